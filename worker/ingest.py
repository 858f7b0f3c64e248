"""Storing arXiv's announcements: papers, per-group fetch records, complete listing days.

Run by the scheduled poll (`worker.schedule.poll` -> `ingest_due`), and by
`newsletter ingest` (a saved file, or OAI-PMH backfill). Owns the rows of
Paper, FeedFetch and ListingDay; commits its own unit of work.

Rules it keeps:
- Papers are upserted by arXiv id and version: the same feed twice changes
  nothing, a newer version updates the row, an older one is ignored. When one
  paper comes twice the same day (two archive groups), the stronger announce
  type wins: new > cross > replace > replace-cross.
- Each (listing date, archive group) gets one FeedFetch row: the feed's own
  date, counts by type, fetch time and any warning (stale feed, error, a count
  far below that group's recent average).
- A listing date is complete (ListingDay.completed_at) only when every archive
  of every configured group is covered by a *fresh* fetch: one whose feed date
  equals the listing date. A saved RSS file covering all configured archives
  counts (its archives come from the channel link); Atom and OAI-PMH files never
  do, since they are not a whole day by construction. An OAI-PMH backfill
  harvests every archive, so it marks the days it covers complete.
- A document that fails to fetch or parse stores no papers for its group.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter import db
from newsletter.db import utcnow
from newsletter.models import AnnounceType, FeedFetch, ListingDay, Paper
from worker import arxiv, calendar
from worker.arxiv import ArxivError, FeedItem, ParsedFeed

log = logging.getLogger(__name__)

# Stronger first: a paper both new (its own archive) and cross-listed the same
# day is "new" for that day.
TYPE_RANK = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}
# A group's count below this fraction of its recent average is worth a warning.
LOW_COUNT_FRACTION = 0.5
LOW_COUNT_HISTORY = 10
LOW_COUNT_MIN_HISTORY = 3
# Backfill reaches at most this far back (OAI-PMH harvests get large).
MAX_BACKFILL_DAYS = 92
MAX_OAI_PAGES = 500
# OAI-PMH covers the whole of arXiv; its FeedFetch rows use this group name.
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
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s): " + " | ".join(self.warnings)
        return text


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
        existing = _feed_fetch(due, group)
        if existing is not None and existing.feed_date == due:
            continue  # fresh already
        try:
            parsed = arxiv.parse_feed(arxiv.fetch_feed(group))
            if parsed.kind != "rss":
                raise arxiv.FeedError(f"expected an RSS feed, got {parsed.kind}")
        except ArxivError as exc:
            message = f"{group}: {exc}"
            log.error("ingest %s: %s", due, message)
            _record_failure(due, group, "rss", message)
            summary.warnings.append(message)
            continue
        if parsed.feed_date != due:
            message = _mismatch_message(group, due, parsed)
            log.warning("ingest %s: %s", due, message)
            _record_failure(due, group, "rss", message, feed_date=parsed.feed_date)
            summary.warnings.append(message)
            continue
        _store_group(summary, due, group, "rss", parsed.items, feed_date=due)
        _commit()  # one unit of work per group: a later group's failure keeps this one
    summary.complete = _update_listing_day(due)
    _commit()
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
        return _store_backfill(
            _backfill_items(parsed.items, None, None), source="file", complete=False
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
    items = parsed.items if parsed.kind == "rss" else [_typed_for_archives(i) for i in parsed.items]
    summary = IngestSummary(day)
    _store_group(
        summary, day, group, "file", [i for i in items if i is not None], feed_date=feed_date
    )
    summary.complete = _update_listing_day(day)
    _commit()
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


# --- OAI-PMH backfill ---


def ingest_oai(first: date, last: date, now: datetime | None = None) -> list[IngestSummary]:
    """Backfill the listing dates first..last from OAI-PMH arXivRaw; mark them complete.

    Records are harvested by datestamp from the day before `first`'s submission
    window up to today, so records touched again since (a journal ref added) are
    still seen; each goes to the listing date its latest version up to `last`
    was announced, as computed from its submission time (approximate:
    moderation holds can delay a paper by a day or more).
    """
    now = now or utcnow()
    today = now.astimezone(UTC).date()
    if first > last:
        raise IngestError(f"--since/--date: {first} is after {last}")
    if last > calendar.due_listing_date(now):
        raise IngestError(f"{last} has not been announced yet")
    if first < today - timedelta(days=MAX_BACKFILL_DAYS):
        raise IngestError(f"backfill reaches back at most {MAX_BACKFILL_DAYS} days")
    days = _listing_dates_between(first, last)
    if not days:
        raise IngestError(f"no arXiv listing date between {first} and {last}")
    from_date = calendar.submission_cutoff(days[0]).date() - timedelta(days=2)
    items: list[FeedItem] = []
    token = None
    for page in range(MAX_OAI_PAGES):
        data = (
            arxiv.fetch_oai_page(from_date=from_date, until_date=today)
            if page == 0
            else (arxiv.fetch_oai_page(resumption_token=token))
        )
        parsed = arxiv.parse_feed(data)
        if parsed.kind != "oai":
            raise arxiv.FeedError(f"expected an OAI-PMH response, got {parsed.kind}")
        items.extend(parsed.items)
        token = parsed.resumption_token
        if not token:
            break
    else:
        raise IngestError(f"OAI-PMH harvest did not end after {MAX_OAI_PAGES} pages")
    by_day = _backfill_items(items, days[0], days[-1])
    for day in days:
        by_day.setdefault(day, [])
    return _store_backfill(by_day, source="oai", complete=True)


def _listing_dates_between(first: date, last: date) -> list[date]:
    days = []
    day = first if calendar.is_listing_date(first) else calendar.next_listing_date(first)
    while day <= last:
        days.append(day)
        day = calendar.next_listing_date(day)
    return days


def _backfill_items(
    items: list[FeedItem], first: date | None, last: date | None
) -> dict[date, list[FeedItem]]:
    """Sort dated records (OAI-PMH, Atom) into listing dates, typed against our archives."""
    by_day: dict[date, list[FeedItem]] = {}
    for item in items:
        announced = [
            (calendar.listing_date_for_submission(submitted), version)
            for version, submitted in item.version_dates
        ]
        announced = [(day, version) for day, version in announced if last is None or day <= last]
        if not announced:
            continue
        day, version = max(announced, key=lambda a: a[1])
        if first is not None and day < first:
            continue
        typed = _typed_for_archives(
            replace(item, version=version, announce_type="new" if version == 1 else "replace")
        )
        if typed is not None:
            by_day.setdefault(day, []).append(typed)
    return by_day


def configured_archives() -> set[str]:
    """Every archive the configured groups cover ("cs", "math-ph", ...)."""
    return {a for group in current_app.config["ARXIV_ARCHIVE_GROUPS"] for a in group.split("+")}


def _archive_of(category: str) -> str:
    # "cs.LG" -> "cs", "astro-ph.GA" -> "astro-ph", "hep-th" -> "hep-th".
    return category.split(".", 1)[0]


def _typed_for_archives(item: FeedItem) -> FeedItem | None:
    """Give a dated record its announce type for our archives; None if none of ours."""
    archives = configured_archives()
    if not item.categories:
        return None
    replaced = item.version > 1
    if _archive_of(item.categories[0]) in archives:
        kind = "replace" if replaced else "new"
    elif any(_archive_of(c) in archives for c in item.categories[1:]):
        kind = "replace-cross" if replaced else "cross"
    else:
        return None
    return replace(item, announce_type=kind)


def _store_backfill(
    by_day: dict[date, list[FeedItem]], *, source: str, complete: bool
) -> list[IngestSummary]:
    if not by_day:
        raise IngestError("the document holds no records for our archives")
    summaries = []
    for day in sorted(by_day):
        summary = IngestSummary(day)
        group = OAI_GROUP if source == "oai" else FILE_GROUP
        _store_group(summary, day, group, source, by_day[day], feed_date=day if complete else None)
        summary.complete = _update_listing_day(day)
        summaries.append(summary)
    _commit()
    return summaries


# --- storing ---


def _commit() -> None:
    try:
        db.session().commit()
    except IntegrityError:
        db.session().rollback()
        raise IngestError(
            "another ingest stored the same papers at the same time; run it again"
        ) from None


def _store_group(
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
    warning = _low_count_warning(listing_date, group, len(items))
    if warning:
        log.warning("ingest %s: %s", listing_date, warning)
        summary.warnings.append(warning)
    fetch = _feed_fetch(listing_date, group) or FeedFetch(
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
            fresh_rows.append(Paper(listing_date=listing_date, **_paper_fields(item)))
            new += 1
        elif item.version > paper.version or (
            item.version == paper.version
            and paper.listing_date == listing_date
            and TYPE_RANK[item.announce_type] < TYPE_RANK[paper.announce_type.value]
        ):
            for name, value in _paper_fields(item).items():
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


def _paper_fields(item: FeedItem) -> dict:
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


def _feed_fetch(listing_date: date, group: str) -> FeedFetch | None:
    return db.session().scalar(
        select(FeedFetch).where(
            FeedFetch.listing_date == listing_date, FeedFetch.archive_group == group
        )
    )


def _record_failure(
    listing_date: date, group: str, source: str, message: str, feed_date: date | None = None
) -> None:
    """Keep a failed or stale fetch visible in `newsletter status`; stores no papers."""
    session = db.session()
    fetch = _feed_fetch(listing_date, group) or FeedFetch(
        listing_date=listing_date, archive_group=group
    )
    fetch.source = source
    fetch.feed_date = feed_date
    fetch.fetched_at = utcnow()
    fetch.count_new = fetch.count_cross = fetch.count_replace = fetch.count_replace_cross = 0
    fetch.warning = message
    session.add(fetch)
    _commit()


def _low_count_warning(listing_date: date, group: str, count: int) -> str | None:
    history = (
        db.session()
        .scalars(
            select(FeedFetch)
            .where(
                FeedFetch.archive_group == group,
                FeedFetch.listing_date < listing_date,
                FeedFetch.feed_date == FeedFetch.listing_date,
            )
            .order_by(FeedFetch.listing_date.desc())
            .limit(LOW_COUNT_HISTORY)
        )
        .all()
    )
    if len(history) < LOW_COUNT_MIN_HISTORY:
        return None
    average = sum(total_items(f) for f in history) / len(history)
    if count < LOW_COUNT_FRACTION * average:
        return f"{group}: only {count} items, far below the recent average of {average:.0f}"
    return None


def total_items(fetch: FeedFetch) -> int:
    return fetch.count_new + fetch.count_cross + fetch.count_replace + fetch.count_replace_cross


def _update_listing_day(listing_date: date) -> bool:
    """Create the day's row; set completed_at once every configured archive is fresh."""
    session = db.session()
    session.flush()
    day = session.get(ListingDay, listing_date)
    if day is None:
        day = ListingDay(listing_date=listing_date)
        session.add(day)
    if day.completed_at is not None:
        return True
    fresh = session.scalars(
        select(FeedFetch.archive_group).where(
            FeedFetch.listing_date == listing_date, FeedFetch.feed_date == listing_date
        )
    ).all()
    covered = {a for group in fresh for a in group.split("+")}
    if OAI_GROUP in covered or configured_archives() <= covered:
        day.completed_at = utcnow()
        log.info("listing date %s complete", listing_date)
        return True
    return False


# --- status ---


@dataclass
class DayStatus:
    listing_date: date
    completed_at: datetime | None
    fetches: list[FeedFetch]

    @property
    def counts(self) -> Counter:
        counts: Counter = Counter()
        for f in self.fetches:
            counts.update(
                {
                    "new": f.count_new,
                    "cross": f.count_cross,
                    "replace": f.count_replace,
                    "replace-cross": f.count_replace_cross,
                }
            )
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
