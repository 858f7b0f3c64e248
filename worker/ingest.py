"""Ingesting arXiv's announcements: the scheduled poll, and saved documents.

Run by the scheduled poll (`worker.schedule.poll` -> `ingest_due`) and by
`newsletter ingest` (`ingest_file`; `--date`/`--since` go to `ingest_oai`,
which lives in worker/backfill.py). It owns the decisions of which document
stands for which listing date: the poll fetches only the due date's groups
that are not fresh yet, and a document that fails to fetch or parse, or is
not dated the due date, stores no papers for its group. Storing and the
completeness rule are worker/ingest_store.py's; each call commits its own
unit of work.
"""

import logging
from datetime import date, datetime
from pathlib import Path

from flask import current_app

from newsletter import db
from newsletter.models import ListingDay
from worker import arxiv, arxiv_client, calendar
from worker.arxiv import ArxivError, ParsedFeed
from worker.backfill import (
    sort_by_listing_date,
    store_by_listing_date,
    type_for_archives,
)
from worker.ingest_store import (
    FILE_GROUP,
    IngestError,
    IngestSummary,
    commit,
    find_feed_fetch,
    record_failure,
    store_group,
    update_listing_day,
)

log = logging.getLogger(__name__)


# --- the scheduled poll ---


def ingest_due(now: datetime) -> IngestSummary:
    """Fetch the due listing date's feeds that are not yet fresh; do nothing if it is complete."""
    due = calendar.due_listing_date(now)
    session = db.session()
    day = session.get(ListingDay, due)
    if day is not None and day.completed_at is not None:
        return IngestSummary(due, complete=True, note="already complete; nothing to do")
    summary = IngestSummary(due)
    for group in current_app.config["ARXIV_ARCHIVE_GROUPS"]:
        existing = find_feed_fetch(due, group)
        if existing is not None and existing.feed_date == due:
            continue  # fresh already
        try:
            parsed = arxiv.parse_feed(arxiv_client.fetch_feed(group))
            if parsed.kind != "rss":
                raise arxiv.FeedError(f"expected an RSS feed, got {parsed.kind}")
        except ArxivError as exc:
            message = f"{group}: {exc}"
            log.error("ingest %s: %s", due, message)
            record_failure(due, group, "rss", message)
            summary.warnings.append(message)
            continue
        if parsed.feed_date != due:
            message = _mismatch_message(group, due, parsed)
            log.warning("ingest %s: %s", due, message)
            record_failure(due, group, "rss", message, feed_date=parsed.feed_date)
            summary.warnings.append(message)
            continue
        store_group(summary, due, group, "rss", parsed.items, feed_date=due)
        commit()  # one unit of work per group: a later group's failure keeps this one
    summary.complete = update_listing_day(due)
    commit()
    log.info("ingest %s", summary.line())
    return summary


def _mismatch_message(group: str, due: date, parsed: ParsedFeed) -> str:
    if parsed.feed_date is None:
        return f"{group}: feed has no pubDate; expected {due}"
    if parsed.feed_date < due:
        return f"{group}: stale feed, still dated {parsed.feed_date} (expected {due}); will retry"
    return (
        f"{group}: feed is dated {parsed.feed_date}, past the expected {due}; "
        f"{due} must be backfilled with `newsletter ingest --date {due}`"
    )


# --- saved documents ---


def ingest_file(path: str | Path, listing_date: date | None = None) -> list[IngestSummary]:
    """Ingest a saved RSS, Atom or OAI-PMH document; the date defaults to the feed's pubDate."""
    data = _read_document(Path(path))
    parsed = arxiv.parse_feed(data)
    if listing_date is not None:
        _check_listing_date(listing_date)
    if parsed.kind == "oai" and listing_date is None:
        # Each record goes to the listing date its version dates point to.
        return store_by_listing_date(
            sort_by_listing_date(parsed.items, None, None), source="file", complete=False
        )
    day = listing_date or parsed.feed_date
    if day is None:
        raise IngestError(
            f"{path}: the document has no date (an {parsed.kind} document); give --date"
        )
    if listing_date is None:
        _check_listing_date(day)
    group = "+".join(parsed.archives) if parsed.archives else FILE_GROUP
    if len(group) > 200:
        group = FILE_GROUP
    # Only an RSS feed dated the same day can vouch for a whole day.
    feed_date = parsed.feed_date if parsed.kind == "rss" else None
    items = parsed.items if parsed.kind == "rss" else [type_for_archives(i) for i in parsed.items]
    summary = IngestSummary(day)
    store_group(
        summary, day, group, "file", [i for i in items if i is not None], feed_date=feed_date
    )
    summary.complete = update_listing_day(day)
    commit()
    return [summary]


def _read_document(path: Path) -> bytes:
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if not path.is_file():
        raise IngestError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > arxiv.MAX_DOCUMENT_BYTES:
        raise IngestError(
            f"{path}: {size:,} bytes, more than the {arxiv.MAX_DOCUMENT_BYTES:,} allowed"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror}") from None


def _check_listing_date(day: date) -> None:
    if not calendar.is_listing_date(day):
        raise IngestError(
            f"{day} is not an arXiv listing date (weekend or holiday in worker/data/arxiv_holidays.csv)"
        )
