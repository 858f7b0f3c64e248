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
- Each (listing date, archive group) gets one FeedFetch row
  (worker/arxiv/fetches.py: its fields and the shortfall rule). An OAI-PMH
  backfill's fresh OAI_GROUP row gets no shortfall check: it is arXiv's
  record after the fact, not a feed that may be half built.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter import db
from newsletter.models import AnnounceType, Paper
from worker.arxiv.fetches import _recent_counts, _save_feed_fetch, shortfall
from worker.arxiv.items import FeedItem

log = logging.getLogger(__name__)

# Stronger first: a paper both new (its own archive) and cross-listed the same
# day is "new" for that day.
TYPE_RANK = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}
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


def record_failure(
    listing_date: date, group: str, source: str, message: str, feed_date: date | None = None
) -> None:
    """Keep a failed or stale fetch visible in `newsletter status`; store no papers; commit."""
    _save_feed_fetch(listing_date, group, source, feed_date, Counter(), message)
    commit()
