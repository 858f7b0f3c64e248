"""Backfill from OAI-PMH: past listing dates, and placing dated records on them.

Run by `newsletter ingest --date D` and `--since D` (`ingest_oai`), and by
`ingest_file` (worker/arxiv/ingest.py) for a saved OAI-PMH or Atom document. No feed
says which listing date announced a version, or whether it was new or a
cross-list for us; this module owns that inference, from each version's
submission time (worker/calendar.py) and its categories against the
configured archives. A harvest covers every archive, so the listing dates it
backfills are marked complete. The configured groups come from the caller's settings.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from newsletter.config import Settings
from newsletter.db import utcnow
from worker import calendar
from worker.arxiv import client as arxiv_client
from worker.arxiv import feeds as arxiv
from worker.arxiv.completeness import configured_archives, update_listing_day
from worker.arxiv.items import FeedError, FeedItem
from worker.arxiv.store import (
    FILE_GROUP,
    OAI_GROUP,
    IngestError,
    IngestSummary,
    commit,
    store_group,
)

# Backfill reaches at most this far back (OAI-PMH harvests get large).
MAX_BACKFILL_DAYS = 92
MAX_OAI_PAGES = 500


def ingest_oai(
    config: Settings,
    first: date,
    last: date,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[IngestSummary]:
    """Backfill the listing dates first..last from OAI-PMH arXivRaw; mark them complete.

    Records are harvested by datestamp from the day before `first`'s submission
    window up to today, so records touched again since (a journal ref added) are
    still seen; each goes to the listing date its latest version up to `last`
    was announced, as computed from its submission time (approximate:
    moderation holds can delay a paper by a day or more). `progress` gets
    (records harvested, records in the harvest) after each page.
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
    groups = config.ARXIV_ARCHIVE_GROUPS
    harvest = _harvest(config, from_date, today, progress)
    by_day = sort_by_listing_date(harvest, days[0], days[-1], archives=configured_archives(groups))
    for day in days:
        by_day.setdefault(day, [])
    return store_by_listing_date(by_day, source="oai", complete=True, groups=groups)


def _harvest(
    config: Settings,
    from_date: date,
    until_date: date,
    progress: Callable[[int, int], None] | None = None,
) -> list[FeedItem]:
    """Every arXivRaw record with a datestamp in from_date..until_date, page by page."""
    items: list[FeedItem] = []
    token = None
    harvested = 0
    list_size: int | None = None
    for _ in range(MAX_OAI_PAGES):
        # With a token, OAI-PMH takes no other argument: the dates go on the first page only.
        data = arxiv_client.fetch_oai_page(
            config, from_date=from_date, until_date=until_date, resumption_token=token
        )
        parsed = arxiv.parse_feed(data)
        if parsed.kind != "oai":
            raise FeedError(f"expected an OAI-PMH response, got {parsed.kind}")
        items.extend(parsed.items)
        token = parsed.resumption_token
        harvested += parsed.records
        # The last page's token may be empty of attributes: keep the size seen before.
        list_size = parsed.list_size or list_size
        if progress is not None:
            # Once the last page is in (or without a completeListSize), what was read is the whole.
            progress(harvested, max(list_size or 0, harvested) if token else harvested)
        if not token:
            return items
    raise IngestError(f"OAI-PMH harvest did not end after {MAX_OAI_PAGES} pages")


def _listing_dates_between(first: date, last: date) -> list[date]:
    days = []
    day = first if calendar.is_listing_date(first) else calendar.next_listing_date(first)
    while day <= last:
        days.append(day)
        day = calendar.next_listing_date(day)
    return days


def sort_by_listing_date(
    items: list[FeedItem], first: date | None, last: date | None, *, archives: set[str]
) -> dict[date, list[FeedItem]]:
    """Sort dated records (OAI-PMH, Atom) into listing dates, typed against our `archives`."""
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
        typed = type_for_archives(
            replace(item, version=version, announce_type="new" if version == 1 else "replace"),
            archives,
        )
        if typed is not None:
            by_day.setdefault(day, []).append(typed)
    return by_day


def _archive_of(category: str) -> str:
    # "cs.LG" -> "cs", "astro-ph.GA" -> "astro-ph", "hep-th" -> "hep-th".
    return category.split(".", 1)[0]


def type_for_archives(item: FeedItem, archives: set[str]) -> FeedItem | None:
    """Give a dated record its announce type for our `archives`; None if none of ours."""
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


def store_by_listing_date(
    by_day: dict[date, list[FeedItem]], *, source: str, complete: bool, groups: Sequence[str]
) -> list[IngestSummary]:
    """Store each day's records under its own group row, in one commit; one summary a day."""
    if not by_day:
        raise IngestError("the document holds no records for our archives")
    group = OAI_GROUP if source == "oai" else FILE_GROUP
    summaries = []
    for day in sorted(by_day):
        summary = IngestSummary(day)
        store_group(summary, day, group, source, by_day[day], feed_date=day if complete else None)
        summary.complete = update_listing_day(day, groups)
        summaries.append(summary)
    commit()
    return summaries
