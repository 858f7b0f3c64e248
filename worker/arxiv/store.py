"""Storing arXiv's announcements: papers, per-group fetch records, complete listing days.

Used by every way in (the scheduled poll and saved files in worker/arxiv/ingest.py,
the OAI-PMH backfill in worker/arxiv/backfill.py) and by `newsletter status`. Owns
the rows of Paper and FeedFetch; never fetches or parses. Its callers own the
unit of work and commit through `commit`.

Rules it keeps:
- Papers are upserted by arXiv id and version: the same feed twice changes
  nothing, a newer version updates the row, an older one is ignored. When one
  paper comes twice the same day (two archive groups), the stronger announce
  type wins: new > cross > replace > replace-cross.
- Each (listing date, archive group) gets one FeedFetch row: the feed's own
  date, counts by type, fetch time and any warning (stale feed, error, a
  shortfall).
- A feed dated its listing date is *fresh*; a fresh feed is *full* unless it
  falls short: empty (every listing date is an announcement day), or under
  SHORTFALL_RATIO of its group's median over the group's last
  SHORTFALL_HISTORY listing dates. A shortfall is stored as the fetch's warning,
  so a fetch *covers* its archives only when it is fresh and carries no warning.
- When those rows make a listing date complete is worker/arxiv/completeness.py's
  rule. An OAI-PMH backfill's fresh OAI_GROUP row gets no shortfall check: it
  is arXiv's record after the fact, not a feed that may be half built.
"""

import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter import db
from newsletter.db import utcnow
from newsletter.models import AnnounceType, FeedFetch, ListingDay, Paper
from worker.arxiv.items import FeedItem

log = logging.getLogger(__name__)

# Stronger first: a paper both new (its own archive) and cross-listed the same
# day is "new" for that day.
TYPE_RANK = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}
# A fresh feed holding under SHORTFALL_RATIO of its group's median item count
# over the group's last SHORTFALL_HISTORY listing dates is taken for a build
# that stopped early, not a quiet day: a group's volume varies from day to day,
# but not to a fifth of its usual (the threshold issue 10 asks for; it has not
# been checked against a year of real counts). The median, so one huge or tiny
# day does not move it. The rule waits for a full SHORTFALL_HISTORY of fresh
# fetches, so a new deployment or a newly configured group is judged only on
# "not empty" until it has a usual level.
SHORTFALL_RATIO = 0.2
SHORTFALL_HISTORY = 10
# FeedFetch group names for documents that are not one RSS query: OAI-PMH
# covers the whole of arXiv; a saved file may name no archives.
OAI_GROUP = "oai"
FILE_GROUP = "file"
_SELECT_CHUNK = 500


class IngestError(Exception):
    """A request to ingest that cannot be carried out (bad path, bad date, ...)."""


@dataclass
class IngestSummary:
    """What one ingest did for one listing date."""

    listing_date: date | None
    counts: Counter = field(default_factory=Counter)  # items seen, by announce type
    stored_new: int = 0
    updated: int = 0
    unchanged: int = 0
    complete: bool = False
    warnings: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. "already complete"
    # The day was complete before this ingest: what it stores arrives late
    # (Paper.created_at after ListingDay.completed_at).
    late: bool = False

    def line(self) -> str:
        """One line for the CLI and the job log."""
        day = self.listing_date.isoformat() if self.listing_date else "-"
        if self.note:
            return f"{day}: {self.note}"
        types = ", ".join(f"{self.counts[t]} {t}" for t in TYPE_RANK)
        text = (
            f"{day}: {sum(self.counts.values())} items ({types}); "
            f"stored {self.stored_new} new, {self.updated} updated, {self.unchanged} unchanged"
        )
        if self.late and (self.stored_new or self.updated):
            text += "; the day was already complete: these arrive late"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s): " + " | ".join(self.warnings)
        return text


def commit() -> None:
    """Commit the session; a concurrent ingest of the same papers becomes an IngestError."""
    try:
        db.session().commit()
    except IntegrityError:
        db.session().rollback()
        raise IngestError(
            "another ingest stored the same papers at the same time; run it again"
        ) from None


def store_group(
    summary: IngestSummary,
    listing_date: date,
    group: str,
    source: str,
    items: list[FeedItem],
    *,
    feed_date: date | None,
) -> None:
    """Upsert `items` under `listing_date` and record the group's FeedFetch (no commit)."""
    counts = Counter(item.announce_type for item in items)
    new, updated, unchanged = store_items(listing_date, items)
    summary.counts.update(counts)
    summary.stored_new += new
    summary.updated += updated
    summary.unchanged += unchanged
    warning = None
    if feed_date == listing_date and group != OAI_GROUP:
        reason = shortfall(len(items), _recent_counts(listing_date, group))
        if reason:
            warning = f"{group}: only {len(items)} items, {reason}; waiting for a full feed"
            log.warning("ingest %s: %s", listing_date, warning)
            summary.warnings.append(warning)
    _save_feed_fetch(listing_date, group, source, feed_date, counts, warning)


def store_items(listing_date: date, items: list[FeedItem]) -> tuple[int, int, int]:
    """Upsert papers by arXiv id and version; return (new, updated, unchanged). No commit."""
    session = db.session()
    best: dict[str, FeedItem] = {}
    for item in items:
        held = best.get(item.arxiv_id)
        if held is None or (item.version, -TYPE_RANK[item.announce_type]) > (
            held.version,
            -TYPE_RANK[held.announce_type],
        ):
            best[item.arxiv_id] = item
    ids = list(best)
    existing: dict[str, Paper] = {}
    for start in range(0, len(ids), _SELECT_CHUNK):
        chunk = ids[start : start + _SELECT_CHUNK]
        existing.update(
            (p.arxiv_id, p) for p in session.scalars(select(Paper).where(Paper.arxiv_id.in_(chunk)))
        )
    new = updated = unchanged = 0
    fresh_rows = []
    for arxiv_id, item in best.items():
        paper = existing.get(arxiv_id)
        if paper is None:
            fresh_rows.append(Paper(listing_date=listing_date, **paper_fields(item)))
            new += 1
        elif item.version > paper.version or (
            item.version == paper.version
            and paper.listing_date == listing_date
            and TYPE_RANK[item.announce_type] < TYPE_RANK[paper.announce_type.value]
        ):
            for name, value in paper_fields(item).items():
                setattr(paper, name, value)
            paper.listing_date = listing_date
            updated += 1
        else:
            # Same or older version: the row already holds this announcement or a
            # later one. (A version first seen on an earlier day keeps that day.)
            unchanged += 1
    session.add_all(fresh_rows)
    session.flush()
    return new, updated, unchanged


def paper_fields(item: FeedItem) -> dict:
    """A Paper's columns from a parsed feed item (all but the listing date)."""
    return {
        "arxiv_id": item.arxiv_id,
        "version": item.version,
        "title": item.title,
        "authors": list(item.authors),
        "categories": list(item.categories),
        "abstract": item.abstract,
        "comments": item.comments,
        "doi": item.doi,
        "journal_ref": item.journal_ref,
        "announce_type": AnnounceType(item.announce_type),
    }


def find_feed_fetch(listing_date: date, group: str) -> FeedFetch | None:
    """The FeedFetch row of one (listing date, archive group), if any."""
    return db.session().scalar(
        select(FeedFetch).where(
            FeedFetch.listing_date == listing_date, FeedFetch.archive_group == group
        )
    )


def record_failure(
    listing_date: date, group: str, source: str, message: str, feed_date: date | None = None
) -> None:
    """Keep a failed or stale fetch visible in `newsletter status`; store no papers; commit."""
    _save_feed_fetch(listing_date, group, source, feed_date, Counter(), message)
    commit()


def _save_feed_fetch(
    listing_date: date,
    group: str,
    source: str,
    feed_date: date | None,
    counts: Counter,
    warning: str | None,
) -> None:
    fetch = find_feed_fetch(listing_date, group) or FeedFetch(
        listing_date=listing_date, archive_group=group
    )
    fetch.source = source
    fetch.feed_date = feed_date
    fetch.fetched_at = utcnow()
    fetch.count_new = counts["new"]
    fetch.count_cross = counts["cross"]
    fetch.count_replace = counts["replace"]
    fetch.count_replace_cross = counts["replace-cross"]
    fetch.warning = warning
    db.session().add(fetch)


def shortfall(count: int, history: list[int]) -> str | None:
    """Why a fresh feed of `count` items is not a full day, given its group's recent counts; or None."""
    if count == 0:
        return "empty on an announcement day"
    if len(history) >= SHORTFALL_HISTORY:
        median = statistics.median(history)
        if count < SHORTFALL_RATIO * median:
            return (
                f"under {SHORTFALL_RATIO:.0%} of its median of {median:g} "
                f"over its last {len(history)} listing dates"
            )
    return None


def _recent_counts(listing_date: date, group: str) -> list[int]:
    """The group's item counts on its last SHORTFALL_HISTORY fresh fetches before `listing_date`."""
    history = db.session().scalars(
        select(FeedFetch)
        .where(
            FeedFetch.archive_group == group,
            FeedFetch.listing_date < listing_date,
            FeedFetch.feed_date == FeedFetch.listing_date,
        )
        .order_by(FeedFetch.listing_date.desc())
        .limit(SHORTFALL_HISTORY)
    )
    return [total_items(fetch) for fetch in history]


def fetch_counts(fetch: FeedFetch) -> Counter:
    """A FeedFetch's item counts by announce type."""
    return Counter(
        {
            "new": fetch.count_new,
            "cross": fetch.count_cross,
            "replace": fetch.count_replace,
            "replace-cross": fetch.count_replace_cross,
        }
    )


def total_items(fetch: FeedFetch) -> int:
    """How many items a FeedFetch stored, of every announce type."""
    return sum(fetch_counts(fetch).values())


# --- status (`newsletter status`) ---


@dataclass
class DayStatus:
    listing_date: date
    completed_at: datetime | None
    fetches: list[FeedFetch]

    @property
    def counts(self) -> Counter:
        counts: Counter = Counter()
        for fetch in self.fetches:
            counts.update(fetch_counts(fetch))
        return counts


def recent_days(limit: int = 7) -> list[DayStatus]:
    """The latest listing dates ingested, newest first, with their fetch records."""
    session = db.session()
    days = session.scalars(
        select(ListingDay).order_by(ListingDay.listing_date.desc()).limit(limit)
    ).all()
    result = []
    for day in days:
        fetches = session.scalars(
            select(FeedFetch)
            .where(FeedFetch.listing_date == day.listing_date)
            .order_by(FeedFetch.archive_group)
        ).all()
        result.append(DayStatus(day.listing_date, day.completed_at, list(fetches)))
    return result
