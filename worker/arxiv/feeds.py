"""arXiv's documents parsed: pure functions from bytes to `ParsedFeed`.

Used by ingest (worker/arxiv/ingest.py, worker/arxiv/backfill.py) on what
worker/arxiv/client.py fetched or a saved file held, and by tests and
benchmarks on recorded responses. It owns the formats we read — the daily
announcement feeds of rss.arxiv.org in RSS (rss.arxiv.org/rss/<archives>) and
in Atom (rss.arxiv.org/atom/<archives>), the Atom of the search API
(export.arxiv.org/api), OAI-PMH arXivRaw (backfill) — and ArxivError, the one
error family of both parsing and fetching. Nothing here touches the network or
the database.

The two Atom documents share a root element and tell themselves apart by
content: an announcement feed's entries carry <arxiv:announce_type> and ids
like "oai:arXiv.org:2609.26811v1", its links point at rss.arxiv.org/atom/; an
API response's entries carry neither.
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from worker.calendar import ARXIV_TZ

# A full day of all of arXiv is ~3 MB of RSS; an OAI page of 2,000 records is a
# few MB. Anything far beyond is not a document we asked for.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")

NS = {
    "arxiv": "http://arxiv.org/schemas/atom",
    "dc": "http://purl.org/dc/elements/1.1/",
    "atom": "http://www.w3.org/2005/Atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
    "oai": "http://www.openarchives.org/OAI/2.0/",
    "raw": "http://arxiv.org/OAI/arXivRaw/",
}

# New-style ids (0704.0001, 2411.17700) and old-style ones (hep-th/9901001, math.AG/0301001).
_ID_VERSION = re.compile(r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})v(\d+)")
_ERROR_TITLE = "Feed error for query:"


class ArxivError(Exception):
    """arXiv gave us nothing usable; the message says why, for a log line or the CLI."""


class FeedError(ArxivError):
    """A document is malformed, truncated, oversized, unsafe, or arXiv's error channel."""


class FetchError(ArxivError):
    """The request failed after every retry (network, timeouts, HTTP status)."""


@dataclass(frozen=True)
class FeedItem:
    """One announced paper version as a feed lists it."""

    arxiv_id: str  # without version, e.g. "2411.17700"
    version: int
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]  # primary first
    announce_type: str  # new | cross | replace | replace-cross
    comments: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    # (version, submitted at) for the versions the document dates (Atom, OAI-PMH
    # only): backfill uses them to find the listing date that announced each
    # version. RSS items carry the feed's date instead.
    version_dates: tuple[tuple[int, datetime], ...] = ()


# ParsedFeed.kind of each document: the two announcement feeds (one listing
# date each, items typed by arXiv), the search API's Atom, an OAI-PMH page.
ANNOUNCEMENT_KINDS = ("rss", "atom-announce")


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed document: an announcement feed (RSS or Atom), the search API's Atom, or OAI-PMH."""

    kind: str  # rss | atom-announce | atom (search API) | oai
    # The listing date of an announcement feed (RSS pubDate, Atom <published>/<updated>);
    # None for the search API and OAI-PMH.
    feed_date: date | None
    archives: list[str]  # what the feed's query covered, e.g. ["cs"]; [] when unknown
    items: list[FeedItem]
    resumption_token: str | None = None  # OAI-PMH: the next page, if any
    # OAI-PMH: records on this page (deleted ones too) and in the whole list
    # (the token's completeListSize, when the server gives it): a harvest's progress.
    records: int = 0
    list_size: int | None = None
    skip_days: list[str] = field(default_factory=list)

    @property
    def is_announcement(self) -> bool:
        """Whether this is one listing date's announcement feed (RSS or Atom)."""
        return self.kind in ANNOUNCEMENT_KINDS


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
        return SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise FeedError("document declares a DTD or entities; refused") from None
    except ET.ParseError as exc:
        raise FeedError(f"malformed or truncated XML: {exc}") from None


def _text(element: ET.Element | None) -> str | None:
    """The element's text with whitespace runs collapsed, or None if empty/missing."""
    if element is None or element.text is None:
        return None
    text = " ".join(element.text.split())
    return text or None


def _split_id(value: str) -> tuple[str, int]:
    match = _ID_VERSION.search(value)
    if match is None:
        raise FeedError(f"no arXiv id with version in {value[:100]!r}")
    return match.group(1), int(match.group(2))


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


def _parse_atom(root: ET.Element) -> ParsedFeed:
    items = []
    for entry in root.findall("atom:entry", NS):
        entry_id = _text(entry.find("atom:id", NS)) or ""
        if "/api/errors" in entry_id:
            raise FeedError(f"arXiv API error: {_text(entry.find('atom:summary', NS)) or entry_id}")
        arxiv_id, version = _split_id(entry_id)
        primary = entry.find("arxiv:primary_category", NS)
        categories = [primary.get("term")] if primary is not None and primary.get("term") else []
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


def _iso_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FeedError(f"bad timestamp {value[:100]!r}") from None
    return _aware(instant)


def _aware(instant: datetime) -> datetime:
    # A timestamp without an offset is UTC in both the Atom and the OAI-PMH documents.
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


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


_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}


def split_authors(raw: str) -> list[str]:
    """Split arXiv's one-string author list: commas and a final "and", not inside parentheses.

    "A (U. X, Dept. Y), B and C" -> ["A (U. X, Dept. Y)", "B", "C"].
    """
    text = " ".join(raw.split())
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and char == ",":
            parts.append(text[start:i])
            start = i + 1
        elif depth == 0 and text.startswith(" and ", i):
            parts.append(text[start:i])
            start = i + len(" and ")
            i = start
            continue
        i += 1
    parts.append(text[start:])
    authors: list[str] = []
    for part in parts:
        name = part.strip()
        if name.startswith("and "):  # "A, B, and C"
            name = name[4:].strip()
        if not name:
            continue
        if name.lower() in _SUFFIXES and authors:  # "John Smith, Jr."
            authors[-1] = f"{authors[-1]}, {name}"
            continue
        authors.append(name)
    return authors
