"""A subscriber's personal Atom feed of their matches (blueprint `bp`).

GET /feed/<token> (a "feed" token, newsletter/tokens.py `feed_url`; it grants
nothing else) answers an Atom 1.0 feed of the papers the subscriber's keyword
lines matched on the last FEED_DATES complete listing dates stored: one entry
per paper, its matching lines as categories. The digest core decides what
matched (worker/digest/core.py, `DayDigest.sections`, the day's own papers as
the email of that day has them), so feed and email never disagree. The
manage page shows the URL (template global `feed_url_for`).

Cheap and cacheable: the validators (ETag, Last-Modified) come from the
listing days (their papers' count and newest updated_at, read again by a
process after DAYS_TTL) and the subscriber's row, so a reader's
If-None-Match / If-Modified-Since gets a 304 before any paper is read. Per
process and keyed by the day as stored, each (day, reader)'s sections and each
paper's rendered entry are kept, so an unchanged day is neither matched nor
rendered again, and a paper is rendered once for every reader it matches.
Read-only. Figures: benchmarks/feed.py.
"""

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from flask import Blueprint, Response, abort, request
from sqlalchemy import func, null, select
from sqlalchemy.orm import Session
from werkzeug.http import is_resource_modified

from newsletter import atom, db
from newsletter.config import Settings, settings
from newsletter.models import ListingDay, Paper, Subscriber, SubscriberStatus
from newsletter.tokens import feed_url, read_token
from worker import calendar
from worker.digest.core import DayDigest, Reader, Sections
from worker.digest.matching import KeywordError, parse_keyword
from worker.digest.pieces import LRU

bp = Blueprint("feed", __name__)

# Complete listing dates the feed covers (about six weeks of announcements).
FEED_DATES = 30
# Bump when the feed's markup changes, so every cached copy is refetched.
FEED_FORMAT = 1
# Readers whose feed is served: a paused subscriber keeps the feed.
SERVED = (SubscriberStatus.CONFIRMED, SubscriberStatus.PAUSED)
# Seconds a process reuses the listing days' counts (a scan of the window's
# papers, ~0.1 s on SQLite for 45,000): papers change at most once a poll.
DAYS_TTL = 60.0
# (day as stored, reader) -> that day's sections: 30 days of ~130 readers.
SECTIONS_KEPT = 4096
# (day as stored, paper) -> its rendered entry, shared by every reader it matches.
ENTRIES_KEPT = 20_000
_IN_BATCH = 500
NOT_VALID = "This feed link is not valid. It may have been mistyped or cut off."
# What matching reads of a paper (worker/digest/matching.py `PaperLike`, and the
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


def last_modified(subscriber: Subscriber, days: list[FeedDay]) -> datetime:
    """The newest instant among the data the feed shows."""
    instants = [subscriber.updated_at]
    instants += [d.completed_at for d in days]
    instants += [d.newest_paper for d in days if d.newest_paper is not None]
    return max(instants)


def entity_tag(reader: Reader, subscriber: Subscriber, days: list[FeedDay]) -> str:
    """A strong ETag: changes with the days as stored, the reader's lines and settings."""
    state = [
        FEED_FORMAT,
        subscriber.public_id,
        list(reader.keywords),
        reader.include_replacements,
        subscriber.updated_at.isoformat(),
        [
            [d.listing_date.isoformat(), d.completed_at.isoformat(), d.paper_count]
            + [d.newest_paper.isoformat() if d.newest_paper else None]
            for d in days
        ],
    ]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:32]


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


def entry_heads(session: Session, host: str, wanted: Iterable[EntryKey]) -> dict[EntryKey, str]:
    """Each (day, arXiv id)'s rendered entry up to its categories, rendered once per day as stored."""
    heads: dict[EntryKey, str] = {}
    missing: dict[str, FeedDay] = {}
    for day, arxiv_id in wanted:
        head = _find(ENTRIES, (day.key, arxiv_id))
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
            head = atom.render_entry_head(paper, host, day.announced)
            _put(ENTRIES, (day.key, paper.arxiv_id), head)
            heads[(day, paper.arxiv_id)] = head
    return heads


def feed_document(
    session: Session,
    lines: dict[EntryKey, list[str]],
    self_url: str,
    base_url: str,
    public_id: str,
    updated: datetime,
) -> bytes:
    """The reader's Atom document: one entry per paper, its matching lines as categories."""
    host = atom.tag_host(base_url)
    heads = entry_heads(session, host, lines)
    return atom.render_feed(
        atom.FeedHead(
            title="arXiv digest: your matches",
            subtitle=f"Papers your keyword lines matched on the last {FEED_DATES} listing dates.",
            feed_id=atom.tag(host, f"feed:{public_id}"),
            updated=updated,
            self_url=self_url,
            home_url=f"{base_url}/",
        ),
        # A paper gone since the day's counts were read has no head: left out.
        ((heads[key], keywords) for key, keywords in lines.items() if key in heads),
    )


def load_feed_subscriber(token: str) -> Subscriber:
    """The subscriber a valid feed token names, if their feed is served; else 404."""
    public_id = read_token(settings().SECRET_KEY, "feed", token)
    if not isinstance(public_id, str):
        abort(404, description=NOT_VALID)
    subscriber = db.session().scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None or subscriber.status not in SERVED:
        abort(404, description="This feed is not available any more.")
    return subscriber


@bp.get("/feed/<token>")
def show(token: str) -> Response:
    subscriber = load_feed_subscriber(token)
    session = db.session()
    reader = Reader.of(subscriber)
    days = feed_days(session)
    etag = entity_tag(reader, subscriber, days)
    modified = last_modified(subscriber, days)
    headers = {"Cache-Control": "private, no-cache"}
    if not is_resource_modified(request.environ, etag=etag, last_modified=modified):
        response = Response(status=304, headers=headers)
    else:
        sections = day_sections(session, settings(), reader, days)
        # The URL as requested: a fresh token would change the body, not the data.
        base_url = settings().BASE_URL
        body = feed_document(
            session,
            matched_lines(days, sections),
            f"{base_url}/feed/{token}",
            base_url,
            subscriber.public_id,
            modified,
        )
        response = Response(
            body, headers=headers, content_type="application/atom+xml; charset=utf-8"
        )
    response.set_etag(etag)
    response.last_modified = modified
    return response


@bp.app_template_global()
def feed_url_for(subscriber: Subscriber) -> str:
    """The subscriber's feed URL, for the manage page."""
    return feed_url(settings(), subscriber.public_id)
