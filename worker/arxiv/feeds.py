"""arXiv's documents parsed: pure functions from bytes to `ParsedFeed`.

Used by ingest (worker/arxiv/ingest.py, worker/arxiv/backfill.py) on what
worker/arxiv/client.py fetched or a saved file held, and by tests and
benchmarks on recorded responses. It owns the formats we read — the daily
announcement feeds of rss.arxiv.org in RSS (rss.arxiv.org/rss/<archives>) and
in Atom (rss.arxiv.org/atom/<archives>), the Atom of the search API
(export.arxiv.org/api), OAI-PMH arXivRaw (backfill). This module reads the
announcement feeds and tells the documents apart; the other two formats are
worker/arxiv/records.py's, and what they all give (FeedItem, ParsedFeed,
ArxivError) is worker/arxiv/items.py's. Nothing here touches the network or
the database.

The two Atom documents share a root element and tell themselves apart by
content: an announcement feed's entries carry <arxiv:announce_type> and ids
like "oai:arXiv.org:2609.26811v1", its links point at rss.arxiv.org/atom/; an
API response's entries carry neither.
"""

import re
import xml.etree.ElementTree as ET
from datetime import date
from email.utils import parsedate_to_datetime
from typing import cast

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from worker.arxiv.items import (
    ANNOUNCE_TYPES,
    NS,
    FeedError,
    FeedItem,
    ParsedFeed,
    _iso_instant,
    _split_id,
    _text,
    split_authors,
)
from worker.arxiv.records import _parse_atom, _parse_oai
from worker.calendar import ARXIV_TZ

# A full day of all of arXiv is ~3 MB of RSS; an OAI page of 2,000 records is a
# few MB. Anything far beyond is not a document we asked for.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_ERROR_TITLE = "Feed error for query:"


def parse_feed(data: bytes) -> ParsedFeed:
    """Parse an arXiv RSS or Atom announcement feed, Atom API response or OAI-PMH arXivRaw page."""
    root = _parse_xml(data)
    if root.tag == "rss":
        return _parse_rss(root)
    if root.tag == f"{{{NS['atom']}}}feed":
        if _is_announcement_atom(root):
            return _parse_announcement_atom(root)
        return _parse_atom(root)
    if root.tag == f"{{{NS['oai']}}}OAI-PMH":
        return _parse_oai(root)
    raise FeedError(f"not an arXiv RSS, Atom or OAI-PMH document (root element <{root.tag}>)")


def _parse_xml(data: bytes) -> ET.Element:
    if not isinstance(data, bytes | bytearray):
        raise FeedError("document must be bytes")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FeedError(
            f"document is {len(data):,} bytes, more than the {MAX_DOCUMENT_BYTES:,} allowed"
        )
    if not data.strip():
        raise FeedError("document is empty")
    try:
        # arXiv never sends a DTD: refusing any (defusedxml also refuses
        # entities and external references) rules out entity expansion.
        # defusedxml is untyped; it returns the standard library's Element.
        return cast(ET.Element, SafeET.fromstring(data, forbid_dtd=True))
    except DefusedXmlException:
        raise FeedError("document declares a DTD or entities; refused") from None
    except ET.ParseError as exc:
        raise FeedError(f"malformed or truncated XML: {exc}") from None


def _date_of(value: str | None, what: str) -> date | None:
    """The calendar date of an RFC 822 timestamp, in its own offset (arXiv uses ET)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).date()
    except (TypeError, ValueError):
        raise FeedError(f"bad {what}: {value[:100]!r}") from None


def _parse_rss(root: ET.Element) -> ParsedFeed:
    channel = root.find("channel")
    if channel is None:
        raise FeedError("RSS document without a <channel>")
    title = _text(channel.find("title")) or ""
    if title.startswith(_ERROR_TITLE):
        # arXiv's error channel (served with HTTP 400): never a quiet day.
        message = _text(channel.find("description")) or title
        raise FeedError(f"{title}: {message}")
    link = _text(channel.find("link")) or ""
    query = link.rstrip("/").rsplit("/", 1)[-1] if "/rss/" in link else ""
    archives = [a for a in query.split("+") if a]
    skip_days = [d.text.strip() for d in channel.findall("skipDays/day") if d.text]
    items = [_rss_item(element) for element in channel.findall("item")]
    return ParsedFeed(
        kind="rss",
        feed_date=_date_of(_text(channel.find("pubDate")), "pubDate"),
        archives=archives,
        items=items,
        skip_days=skip_days,
    )


def _rss_item(item: ET.Element) -> FeedItem:
    return _announced_item(
        item,
        ident=_text(item.find("guid")),
        description=item.findtext("description") or "",
        title=_text(item.find("title")),
        categories=[c for c in (_text(e) for e in item.findall("category")) if c],
    )


def _announced_item(
    element: ET.Element,
    *,
    ident: str | None,
    description: str,
    title: str | None,
    categories: list[str],
) -> FeedItem:
    """An RSS <item> or Atom <entry> of an announcement feed: the same fields, two spellings."""
    arxiv_id, version = _split_id(ident or description)
    announce_type = _text(element.find("arxiv:announce_type", NS))
    if announce_type is None:
        match = re.search(r"Announce Type:\s*([a-z-]+)", description)
        announce_type = match.group(1) if match else None
    if announce_type not in ANNOUNCE_TYPES:
        raise FeedError(f"{arxiv_id}: unknown announce type {announce_type!r}")
    # "arXiv:<id>v<N> Announce Type: <type> \nAbstract: <text>"
    _, found, abstract = description.partition("Abstract:")
    if title is None:
        raise FeedError(f"{arxiv_id}: item without a title")
    return FeedItem(
        arxiv_id=arxiv_id,
        version=version,
        title=title,
        abstract=" ".join((abstract if found else "").split()),
        authors=split_authors(element.findtext("dc:creator", "", NS)),
        categories=categories,
        announce_type=announce_type,
        comments=_text(element.find("arxiv:comments", NS))
        or _text(element.find("arxiv:comment", NS)),
        doi=_text(element.find("arxiv:DOI", NS)),
        journal_ref=_text(element.find("arxiv:journal_reference", NS)),
    )


def _is_announcement_atom(root: ET.Element) -> bool:
    if root.find("atom:entry/arxiv:announce_type", NS) is not None:
        return True
    # An empty announcement feed has no entries to tell by; its id and links do.
    where = [_text(root.find("atom:id", NS)) or ""]
    where += [link.get("href") or "" for link in root.findall("atom:link", NS)]
    return any("/atom/" in url and "/api/" not in url for url in where)


def _parse_announcement_atom(root: ET.Element) -> ParsedFeed:
    """rss.arxiv.org/atom/<archives>: the RSS feed's items as Atom entries.

    The listing date is every entry's <published> (midnight ET of the listing
    date, e.g. 2026-09-24T00:00:00-04:00); an empty feed has only the feed's
    <updated>, the instant it was built, which falls on the listing date in ET.
    """
    items = []
    published: set[date] = set()
    for entry in root.findall("atom:entry", NS):
        items.append(
            _announced_item(
                entry,
                ident=_text(entry.find("atom:id", NS)),
                description=entry.findtext("atom:summary", "", NS),
                title=_text(entry.find("atom:title", NS)),
                categories=[
                    term
                    for term in (c.get("term") for c in entry.findall("atom:category", NS))
                    if term
                ],
            )
        )
        instant = _iso_instant(_text(entry.find("atom:published", NS)))
        if instant is not None:
            # In its own offset, as arXiv writes it: midnight ET is the listing date.
            published.add(instant.date())
    if len(published) > 1:
        days = ", ".join(sorted(d.isoformat() for d in published))
        raise FeedError(f"Atom feed entries are dated {days}: not one listing date")
    feed_date: date | None
    if published:
        feed_date = published.pop()
    else:
        built = _iso_instant(_text(root.find("atom:updated", NS)))
        feed_date = built.astimezone(ARXIV_TZ).date() if built is not None else None
    links = [_text(root.find("atom:id", NS)) or ""]
    links += [link.get("href") or "" for link in root.findall("atom:link", NS)]
    query = next((url.split("/atom/", 1)[1] for url in links if "/atom/" in url), "")
    return ParsedFeed(
        kind="atom-announce",
        feed_date=feed_date,
        archives=[a for a in query.strip("/").split("+") if a],
        items=items,
    )
