"""Ingesting arXiv's announcements: the scheduled poll, and saved documents.

Run by the scheduled poll (`worker.schedule.poll` -> `ingest_due`, every poll)
and by `newsletter ingest` (`ingest_file`; `--date`/`--since` go to
`ingest_oai`, which lives in worker/arxiv/backfill.py). It owns the decisions of
which document stands for which listing date, and when the due date is done:

- The poll fetches the due date's groups that do not yet cover it (see the
  completeness rule in worker/arxiv/completeness.py: a feed dated the due date that is
  not empty and not far below its group's usual size). A document that fails to
  fetch or parse, or is not dated the due date, stores no papers for its group;
  a short one stores what it has. Either way the day stays incomplete and the
  next poll tries again.
- At the deadline (INGEST_COMPLETE_DEADLINE_HOURS after the due date's feed
  rebuild, worker/calendar.py) the day completes with what it has; each
  uncovered group's FeedFetch.warning says so (`newsletter status`) and a
  warning is logged naming the group, its count and the reason. "What it has"
  needs one feed dated the day, even an empty one (an all-empty weekday is
  most likely a holiday missing from our table): while every feed is stale or
  failing, arXiv has not published the day for us, completing it would send
  nothing, and the day waits for its feeds (or `newsletter ingest --date`).
- A complete due date is still polled for its uncovered groups until the next
  listing date is due. Papers that come then are stored under their own
  listing date like any other (an idempotent upsert) but *after* the day was
  completed, and possibly after its digests went out: Paper.created_at later
  than ListingDay.completed_at tells them apart. Storing them is this module's
  job; sending them is the digest's.

Storing is worker/arxiv/store.py's and the completeness rule
worker/arxiv/completeness.py's; each call commits its own unit of work. The
callers (the poll, the CLI) pass their settings down.
"""

import logging
from datetime import date, datetime, timedelta
from pathlib import Path

from newsletter import db
from newsletter.config import Settings
from newsletter.models import ListingDay
from worker import calendar
from worker.arxiv import client as arxiv_client
from worker.arxiv import feeds as arxiv
from worker.arxiv.backfill import (
    sort_by_listing_date,
    store_by_listing_date,
    type_for_archives,
)
from worker.arxiv.completeness import (
    configured_archives,
    has_dated_feed,
    note_uncovered_groups,
    uncovered_groups,
    update_listing_day,
)
from worker.arxiv.fetches import find_feed_fetch, total_items
from worker.arxiv.items import ArxivError, FeedError, ParsedFeed
from worker.arxiv.store import (
    FILE_GROUP,
    IngestError,
    IngestSummary,
    commit,
    record_failure,
    store_group,
)

log = logging.getLogger(__name__)


# --- the scheduled poll ---


def ingest_due(config: Settings, now: datetime) -> IngestSummary:
    """Fetch the due listing date's groups that do not cover it yet; complete it when they do."""
    due = calendar.due_listing_date(now)
    day = db.session().get(ListingDay, due)
    already_complete = day is not None and day.completed_at is not None
    configured = config.ARXIV_ARCHIVE_GROUPS
    groups = uncovered_groups(due, configured)
    if already_complete and not groups:
        return IngestSummary(due, complete=True, note="already complete; nothing to do")
    summary = IngestSummary(due, late=already_complete)
    for group in groups:
        _ingest_group(config, summary, due, group)
    deadline = completion_deadline(due, config.INGEST_COMPLETE_DEADLINE_HOURS)
    at_deadline = now >= deadline and has_dated_feed(due)
    summary.complete = update_listing_day(due, configured, at_deadline=at_deadline)
    if summary.complete:
        for fetch in note_uncovered_groups(due, configured):
            message = (
                f"{due} completed at the deadline without a full feed from "
                f"{fetch.archive_group} ({total_items(fetch)} items): {fetch.warning}"
            )
            log.warning("ingest %s", message)
            assert fetch.warning is not None  # note_uncovered_groups wrote it
            summary.warnings.append(fetch.warning)
    commit()
    log.info("ingest %s", summary.line())
    return summary


def completion_deadline(listing_date: date, hours: float) -> datetime:
    """When the poll stops waiting for full feeds and completes `listing_date` with what it has:
    `hours` (INGEST_COMPLETE_DEADLINE_HOURS) past its feed rebuild."""
    return calendar.feed_rebuild_instant(listing_date) + timedelta(hours=hours)


def _ingest_group(config: Settings, summary: IngestSummary, due: date, group: str) -> None:
    """Fetch one group's feed and store it if it is dated `due`; record why not otherwise."""
    try:
        parsed = arxiv.parse_feed(arxiv_client.fetch_feed(config, group))
        if not parsed.is_announcement:
            raise FeedError(f"expected an announcement feed, got {parsed.kind}")
    except ArxivError as exc:
        _record_miss(summary, due, group, f"{group}: {exc}", None, level=logging.ERROR)
        return
    if parsed.feed_date != due:
        message = _mismatch_message(group, due, parsed)
        _record_miss(summary, due, group, message, parsed.feed_date, level=logging.WARNING)
        return
    store_group(summary, due, group, "rss", parsed.items, feed_date=due)
    commit()  # one unit of work per group: a later group's failure keeps this one


def _record_miss(
    summary: IngestSummary,
    due: date,
    group: str,
    message: str,
    feed_date: date | None,
    *,
    level: int,
) -> None:
    log.log(level, "ingest %s: %s", due, message)
    summary.warnings.append(message)
    held = find_feed_fetch(due, group)
    if held is not None and held.feed_date == due:
        # A feed dated the due date was stored before (a short one, being
        # retried): keep its counts and shortfall warning, which still hold.
        return
    record_failure(due, group, "rss", message, feed_date=feed_date)


def _mismatch_message(group: str, due: date, parsed: ParsedFeed) -> str:
    if parsed.feed_date is None:
        return f"{group}: feed has no date; expected {due}"
    if parsed.feed_date < due:
        return f"{group}: stale feed, still dated {parsed.feed_date} (expected {due}); will retry"
    return (
        f"{group}: feed is dated {parsed.feed_date}, past the expected {due}; "
        f"{due} must be backfilled with `newsletter ingest --date {due}`"
    )


# --- saved documents ---


def ingest_file(
    config: Settings, path: str | Path, listing_date: date | None = None
) -> list[IngestSummary]:
    """Ingest a saved RSS, Atom or OAI-PMH document; the date defaults to the feed's own.

    An announcement feed (RSS, or Atom from rss.arxiv.org/atom) is dated by
    itself; search-API Atom and OAI-PMH documents are dated per record, or by --date.
    """
    data = _read_document(Path(path))
    parsed = arxiv.parse_feed(data)
    if listing_date is not None:
        _check_listing_date(listing_date)
    groups = config.ARXIV_ARCHIVE_GROUPS
    archives = configured_archives(groups)
    if parsed.kind == "oai" and listing_date is None:
        # Each record goes to the listing date its version dates point to.
        by_day = sort_by_listing_date(parsed.items, None, None, archives=archives)
        return store_by_listing_date(by_day, source="file", complete=False, groups=groups)
    day = listing_date or parsed.feed_date
    if day is None:
        raise IngestError(
            f"{path}: the document has no date ({_KIND_NAMES.get(parsed.kind, parsed.kind)}); "
            "give --date"
        )
    if listing_date is None:
        _check_listing_date(day)
    group = "+".join(parsed.archives) if parsed.archives else FILE_GROUP
    if len(group) > 200:
        group = FILE_GROUP
    # Only an announcement feed dated the same day can vouch for a whole day.
    feed_date = parsed.feed_date if parsed.is_announcement else None
    items = (
        parsed.items
        if parsed.is_announcement
        else [type_for_archives(i, archives) for i in parsed.items]
    )
    held = db.session().get(ListingDay, day)
    summary = IngestSummary(day, late=held is not None and held.completed_at is not None)
    store_group(
        summary, day, group, "file", [i for i in items if i is not None], feed_date=feed_date
    )
    summary.complete = update_listing_day(day, groups)
    commit()
    return [summary]


_KIND_NAMES = {
    "rss": "an RSS feed without a pubDate",
    "atom-announce": "an Atom announcement feed without <published> or <updated>",
    "atom": "a search-API Atom document",
}


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
