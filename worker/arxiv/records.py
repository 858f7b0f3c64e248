"""Dated records parsed: the search API's Atom and OAI-PMH arXivRaw pages (pure).

Called by worker/arxiv/feeds.py's `parse_feed`. Neither document says how a
version was announced; each record carries the dates of its versions
(`FeedItem.version_dates`), from which worker/arxiv/backfill.py infers the
listing date that announced it.
"""

import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime

from worker.arxiv.items import (
    NS,
    FeedError,
    FeedItem,
    ParsedFeed,
    _aware,
    _iso_instant,
    _split_id,
    _text,
    split_authors,
)


def _parse_atom(root: ET.Element) -> ParsedFeed:
    items = []
    for entry in root.findall("atom:entry", NS):
        entry_id = _text(entry.find("atom:id", NS)) or ""
        if "/api/errors" in entry_id:
            raise FeedError(f"arXiv API error: {_text(entry.find('atom:summary', NS)) or entry_id}")
        arxiv_id, version = _split_id(entry_id)
        primary = entry.find("arxiv:primary_category", NS)
        primary_term = primary.get("term") if primary is not None else None
        categories = [primary_term] if primary_term else []
        for category in entry.findall("atom:category", NS):
            term = category.get("term")
            if term and term not in categories:
                categories.append(term)
        dates = [(version, _iso_instant(_text(entry.find("atom:updated", NS))))]
        if version > 1:
            dates.append((1, _iso_instant(_text(entry.find("atom:published", NS)))))
        items.append(
            FeedItem(
                arxiv_id=arxiv_id,
                version=version,
                title=_text(entry.find("atom:title", NS)) or "",
                abstract=_text(entry.find("atom:summary", NS)) or "",
                authors=[
                    n
                    for n in (
                        _text(a.find("atom:name", NS)) for a in entry.findall("atom:author", NS)
                    )
                    if n
                ],
                categories=categories,
                # The API does not say how a version was announced; v1 is new.
                announce_type="new" if version == 1 else "replace",
                comments=_text(entry.find("arxiv:comment", NS)),
                doi=_text(entry.find("arxiv:doi", NS)),
                journal_ref=_text(entry.find("arxiv:journal_ref", NS)),
                version_dates=tuple(sorted((v, d) for v, d in dates if d is not None)),
            )
        )
    return ParsedFeed(kind="atom", feed_date=None, archives=[], items=items)


def _parse_oai(root: ET.Element) -> ParsedFeed:
    error = root.find("oai:error", NS)
    if error is not None:
        if error.get("code") == "noRecordsMatch":
            return ParsedFeed(kind="oai", feed_date=None, archives=[], items=[])
        raise FeedError(f"OAI-PMH error {error.get('code')}: {_text(error) or ''}".strip())
    list_records = root.find("oai:ListRecords", NS)
    if list_records is None:
        raise FeedError("OAI-PMH response without <ListRecords>")
    items = []
    records = list_records.findall("oai:record", NS)
    for record in records:
        header = record.find("oai:header", NS)
        if header is not None and header.get("status") == "deleted":
            continue
        raw = record.find("oai:metadata/raw:arXivRaw", NS)
        if raw is None:
            raise FeedError("OAI-PMH record without arXivRaw metadata (wrong metadataPrefix?)")
        items.append(_oai_item(raw))
    token_element = list_records.find("oai:resumptionToken", NS)
    token = _text(token_element)
    size = token_element.get("completeListSize", "") if token_element is not None else ""
    return ParsedFeed(
        kind="oai",
        feed_date=None,
        archives=[],
        items=items,
        resumption_token=token,
        records=len(records),
        list_size=int(size) if size.isdigit() else None,
    )


def _oai_item(raw: ET.Element) -> FeedItem:
    arxiv_id = _text(raw.find("raw:id", NS))
    if arxiv_id is None:
        raise FeedError("arXivRaw record without an id")
    versions = []
    for element in raw.findall("raw:version", NS):
        number = (element.get("version") or "").lstrip("v")
        if not number.isdigit():
            raise FeedError(f"{arxiv_id}: bad version {element.get('version')!r}")
        submitted = _text(element.find("raw:date", NS))
        try:
            instant = _aware(parsedate_to_datetime(submitted)) if submitted else None
        except (TypeError, ValueError):
            raise FeedError(f"{arxiv_id}: bad version date {submitted!r}") from None
        versions.append((int(number), instant))
    if not versions:
        raise FeedError(f"{arxiv_id}: record without versions")
    version = max(number for number, _ in versions)
    return FeedItem(
        arxiv_id=arxiv_id,
        version=version,
        title=_text(raw.find("raw:title", NS)) or "",
        abstract=_text(raw.find("raw:abstract", NS)) or "",
        authors=split_authors(raw.findtext("raw:authors", "", NS)),
        categories=(_text(raw.find("raw:categories", NS)) or "").split(),
        # Cross-lists depend on who asks; ingest decides them against its archives.
        announce_type="new" if version == 1 else "replace",
        comments=_text(raw.find("raw:comments", NS)),
        doi=_text(raw.find("raw:doi", NS)),
        journal_ref=_text(raw.find("raw:journal-ref", NS)),
        version_dates=tuple(sorted((v, d) for v, d in versions if d is not None)),
    )
