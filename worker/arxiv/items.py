"""What parsing arXiv's documents gives, and the field readers the formats share (pure).

Used by worker/arxiv/feeds.py (the announcement feeds and `parse_feed`) and
worker/arxiv/records.py (the search API's Atom, OAI-PMH), and by everything that
handles their results: `FeedItem`, `ParsedFeed` and ArxivError, the one error
family of both parsing and fetching (worker/arxiv/client.py).
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

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
