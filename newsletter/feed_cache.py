"""What the personal Atom feed reads, cached per process (newsletter/feed.py calls it).

The last FEED_DATES complete listing dates as stored (`FeedDay`, read again
after DAYS_TTL), each reader's sections of each day as the digest core decides
them, and each paper's rendered entry head, kept per (day as stored, paper) so
an unchanged day is neither matched nor rendered again. Keyed by the database
URL and the day as stored, so a change of papers makes new keys.
"""

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import func, null, select
from sqlalchemy.orm import Session

from newsletter import atom
from newsletter.config import Settings
from newsletter.models import ListingDay, Paper, Tldr, TranslationStatus
from worker import calendar
from worker.digest.core import DayDigest, Reader, Sections
from worker.digest.matching import KeywordError, parse_keyword
from worker.digest.pieces import LRU

# Complete listing dates the feed covers (about six weeks of announcements).
FEED_DATES = 30
# Seconds a process reuses the listing days' counts (a scan of the window's
# papers, ~0.1 s on SQLite for 45,000): papers change at most once a poll.
DAYS_TTL = 60.0
# (day as stored, reader) -> that day's sections: 30 days of ~130 readers.
SECTIONS_KEPT = 4096
# (day as stored, paper) -> its rendered entry, shared by every reader it matches.
ENTRIES_KEPT = 20_000
_IN_BATCH = 500
# What matching reads of a paper (worker/digest/selection.py `PaperLike`, and the
# section order in worker/digest/core.py): a day is matched from these columns
# only, without the ORM, which costs more than the matching for 1,500 papers.
_MATCHED = (
    Paper.arxiv_id,
    Paper.title,
    Paper.abstract,
    Paper.categories,
    Paper.announce_type,
    Paper.listing_date,
)


@dataclass(frozen=True)
class FeedDay:
    """A complete listing date as stored: what its sections and entries depend on."""

    database: str
    listing_date: date
    completed_at: datetime
    paper_count: int
    newest_paper: datetime | None

    @property
    def key(self) -> tuple[object, ...]:
        """Changes when anything of the day's papers may have changed."""
        return (
            self.database,
            self.listing_date,
            self.completed_at,
            self.paper_count,
            self.newest_paper,
        )

    @property
    def announced(self) -> datetime:
        """When the day was announced (UTC); its completion for a date arXiv's calendar lacks."""
        try:
            return calendar.announcement_instant(self.listing_date).astimezone(UTC)
        except ValueError:
            return self.completed_at


# A paper on the day it is in the feed under.
EntryKey = tuple[FeedDay, str]
# Per process, least recently used first out (what each holds: SECTIONS_KEPT, ENTRIES_KEPT).
SECTIONS = LRU(SECTIONS_KEPT)
ENTRIES = LRU(ENTRIES_KEPT)
# Database URL -> (when read, on the monotonic clock; its feed days).
DAYS: dict[str, tuple[float, list[FeedDay]]] = {}


# A threaded server (`newsletter dev`) may serve two feeds at once: an LRU's
# find (get, then move to the end) must not meet another request's eviction.
_LOCK = threading.Lock()


def _find(cache: LRU, key: object) -> Any:
    with _LOCK:
        return cache.find(key)


def _put(cache: LRU, key: object, value: object) -> None:
    with _LOCK:
        cache.put(key, value)


def clear_caches() -> None:
    """Forget every cached day, section and entry (tests)."""
    DAYS.clear()
    SECTIONS.clear()
    ENTRIES.clear()


def feed_days(session: Session) -> list[FeedDay]:
    """The last FEED_DATES complete listing dates, newest first; read again after DAYS_TTL."""
    database = str(session.get_bind().engine.url)
    read_at, days = DAYS.get(database, (0.0, []))
    now = time.monotonic()
    if read_at and now - read_at < DAYS_TTL:
        return days
    days = read_feed_days(session, database)
    DAYS[database] = (now, days)
    return days


def read_feed_days(session: Session, database: str) -> list[FeedDay]:
    """The last FEED_DATES complete listing dates, with their papers' count and newest change."""
    days = session.execute(
        select(ListingDay.listing_date, ListingDay.completed_at)
        .where(ListingDay.completed_at.is_not(None))
        .order_by(ListingDay.listing_date.desc())
        .limit(FEED_DATES)
    ).all()
    if not days:
        return []
    stats = {
        row.listing_date: (row.count, row.newest)
        for row in session.execute(
            select(
                Paper.listing_date,
                func.count().label("count"),
                func.max(Paper.updated_at).label("newest"),
            )
            .where(Paper.listing_date.in_([d.listing_date for d in days]))
            .group_by(Paper.listing_date)
        )
    }
    return [
        FeedDay(database, d.listing_date, d.completed_at, *stats.get(d.listing_date, (0, None)))
        for d in days
    ]


def day_sections(
    session: Session, config: Settings, reader: Reader, days: list[FeedDay]
) -> dict[date, Sections]:
    """The reader's sections of each day, as the digest core decides them for that day's email.

    Only the day's own papers count: a late paper is in the feed under its own
    listing date, not under the digest that carried it.
    """
    keys = {d.listing_date: (d.key, reader.keywords, reader.include_replacements) for d in days}
    found: dict[date, Sections] = {}
    for listing_date, key in keys.items():
        sections = _find(SECTIONS, key)
        if sections is not None:
            found[listing_date] = sections
    missing = [d for d in keys if d not in found]
    if missing:
        # Matching reads the authors only for an au: line; decoding them is a
        # third of reading a day.
        authors = Paper.authors if any(map(_names_author, reader.keywords)) else null()
        query = select(*_MATCHED, authors.label("authors"))
        papers: dict[date, dict[str, Paper]] = {d: {} for d in missing}
        for row in session.execute(query.where(Paper.listing_date.in_(missing))):
            # Rows with the columns matching reads stand in for papers.
            papers[row.listing_date][row.arxiv_id] = cast(Paper, row)
        for listing_date in missing:
            day = DayDigest(listing_date, papers[listing_date], config)
            found[listing_date] = day.sections({0: reader})[0]
            _put(SECTIONS, keys[listing_date], found[listing_date])
    return found


def _names_author(line: str) -> bool:
    try:
        return bool(parse_keyword(line).authors)
    except KeywordError:
        return False


def matched_lines(
    days: list[FeedDay], sections: Mapping[date, Sections]
) -> dict[EntryKey, list[str]]:
    """(day, arXiv id) -> the reader's lines that matched it, newest day first, each paper once."""
    lines: dict[EntryKey, list[str]] = {}
    seen: dict[str, EntryKey] = {}
    for day in days:
        for keyword, ids in sections.get(day.listing_date, ()):
            for arxiv_id in ids:
                key = seen.setdefault(arxiv_id, (day, arxiv_id))
                matched = lines.setdefault(key, [])
                if keyword not in matched:
                    matched.append(keyword)
    return lines


def entry_heads(
    session: Session, host: str, wanted: Iterable[EntryKey], tldr: bool = False
) -> dict[EntryKey, str]:
    """Each (day, arXiv id)'s rendered entry up to its categories, rendered once per day as stored.

    With `tldr`, each with the paper version's English TL;DR, if it has one
    (kept apart: by its text, which may come after the day was cached).
    """
    heads: dict[EntryKey, str] = {}
    missing: dict[str, FeedDay] = {}
    wanted = list(wanted)
    tldrs = feed_tldrs(session, [arxiv_id for _day, arxiv_id in wanted]) if tldr else {}

    def key(day: FeedDay, arxiv_id: str) -> tuple:
        text = tldrs.get(arxiv_id)
        return (day.key, arxiv_id, text) if text else (day.key, arxiv_id)

    for day, arxiv_id in wanted:
        head = _find(ENTRIES, key(day, arxiv_id))
        if head is None:
            missing[arxiv_id] = day
        else:
            heads[(day, arxiv_id)] = head
    ids = sorted(missing)
    for start in range(0, len(ids), _IN_BATCH):
        for paper in session.scalars(
            select(Paper).where(Paper.arxiv_id.in_(ids[start : start + _IN_BATCH]))
        ):
            day = missing[paper.arxiv_id]
            text = tldrs.get(paper.arxiv_id, (0, ""))
            head = atom.render_entry_head(
                paper, host, day.announced, text[1] if text[0] == paper.version else None
            )
            _put(ENTRIES, key(day, paper.arxiv_id), head)
            heads[(day, paper.arxiv_id)] = head
    return heads


def feed_tldrs(session: Session, ids: list[str]) -> dict[str, tuple[int, str]]:
    """arXiv id -> (version, its English TL;DR) of the papers that have one."""
    found: dict[str, tuple[int, str]] = {}
    ids = sorted(set(ids))
    for start in range(0, len(ids), _IN_BATCH):
        rows = session.execute(
            select(Tldr.arxiv_id, Tldr.version, Tldr.text).where(
                Tldr.arxiv_id.in_(ids[start : start + _IN_BATCH]),
                Tldr.language == "en",
                Tldr.status == TranslationStatus.DONE,
            )
        )
        for arxiv_id, version, text in rows:
            if text and version >= found.get(arxiv_id, (0, ""))[0]:
                found[arxiv_id] = (version, text)
    return found


def newest_tldr(session: Session) -> datetime | None:
    """When the newest TL;DR was written: a feed showing TL;DRs changes with it."""
    return session.scalar(select(func.max(Tldr.created_at)))
