"""arXiv's announcement calendar, in America/New_York (pure).

Used by the ingest job (which listing date is due), `newsletter status` and the
scheduler. arXiv announces Sunday-Thursday at 20:00 ET; each batch is named by
its listing date, the day after the announcement (announced Wed 2024-11-27
20:00 ET = listing date Thu 2024-11-28). So listing dates are Monday-Friday,
minus the holidays in data/arxiv_holidays.csv.

Two clocks matter, and they differ by about four hours:
- `listing_date_for(instant)`: the latest batch *announced* at or before the
  instant (it changes at 20:00 ET).
- `due_listing_date(now)`: the latest batch whose *RSS feed* we can expect. The
  feeds rebuild around midnight ET, so from 20:00 ET until the rebuild they still
  show the previous listing date. `due` therefore turns over at 00:00 ET on the
  listing date itself; polling between 20:00 and midnight would only fetch stale
  feeds. If a rebuild runs late, the feed's pubDate is still the previous date,
  ingest records it as stale (not fresh), and the next poll tries again: a
  listing date is complete only once every feed's pubDate equals it and every
  feed is full, or at ingest's deadline counted from `feed_rebuild_instant`
  (worker/arxiv/ingest.py).

All functions refuse naive datetimes. Every instant is converted to ET with
zoneinfo, so DST changes need no special case.
"""

import csv
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

ARXIV_TZ = ZoneInfo("America/New_York")
ANNOUNCEMENT_TIME = time(20, 0)
SUBMISSION_CUTOFF = time(14, 0)
HOLIDAYS_FILE = Path(__file__).resolve().parent / "data" / "arxiv_holidays.csv"

# A year of listing dates is ~250; no gap between two is ever this long.
_MAX_GAP_DAYS = 30


@cache
def holidays() -> frozenset[date]:
    """Listing dates that arXiv skips (its holidays), from data/arxiv_holidays.csv."""
    rows = (
        line
        for line in HOLIDAYS_FILE.read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    )
    return frozenset(date.fromisoformat(row["listing_date"]) for row in csv.DictReader(rows))


def _local(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive datetime given; use an aware one (newsletter.db.utcnow())")
    return instant.astimezone(ARXIV_TZ)


def is_listing_date(day: date) -> bool:
    """Whether arXiv publishes a listing dated `day` (Mon-Fri, not a holiday)."""
    return day.weekday() < 5 and day not in holidays()


def previous_listing_date(day: date) -> date:
    """The last listing date strictly before `day`."""
    return _walk(day - timedelta(days=1), -1)


def next_listing_date(day: date) -> date:
    """The first listing date strictly after `day`."""
    return _walk(day + timedelta(days=1), +1)


def _walk(day: date, step: int) -> date:
    for _ in range(_MAX_GAP_DAYS):
        if is_listing_date(day):
            return day
        day += timedelta(days=step)
    raise ValueError(
        f"no listing date within {_MAX_GAP_DAYS} days of {day}; check the holiday table"
    )


def _at_or_before(day: date) -> date:
    return day if is_listing_date(day) else previous_listing_date(day)


def announcement_instant(listing_date: date) -> datetime:
    """When the batch for `listing_date` is announced: 20:00 ET the evening before."""
    if not is_listing_date(listing_date):
        raise ValueError(f"{listing_date} is not an arXiv listing date")
    return datetime.combine(listing_date - timedelta(days=1), ANNOUNCEMENT_TIME, tzinfo=ARXIV_TZ)


def feed_rebuild_instant(listing_date: date) -> datetime:
    """When the RSS feeds start showing `listing_date`: about midnight ET on it."""
    if not is_listing_date(listing_date):
        raise ValueError(f"{listing_date} is not an arXiv listing date")
    return datetime.combine(listing_date, time(0, 0), tzinfo=ARXIV_TZ)


def listing_date_for(instant: datetime) -> date:
    """The listing date of the latest announcement at or before `instant`."""
    local = _local(instant)
    day = local.date()
    if local.time() >= ANNOUNCEMENT_TIME:
        day += timedelta(days=1)
    return _at_or_before(day)


def due_listing_date(now: datetime) -> date:
    """The listing date whose RSS feeds should be current at `now` (see module doc)."""
    return _at_or_before(_local(now).date())


def next_expected(now: datetime) -> tuple[date, datetime]:
    """The next listing date to become due after `now`, and when its feeds rebuild."""
    upcoming = next_listing_date(due_listing_date(now))
    return upcoming, feed_rebuild_instant(upcoming)


def submission_cutoff(listing_date: date) -> datetime:
    """The last submission instant that makes `listing_date`: 14:00 ET on the latest weekday before it.

    The Monday batch (announced Sunday) closes on Friday 14:00.
    """
    day = listing_date - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, SUBMISSION_CUTOFF, tzinfo=ARXIV_TZ)


def listing_date_for_submission(submitted_at: datetime) -> date:
    """The listing date that announces a version submitted at `submitted_at`.

    Approximate: moderation can hold a paper for a later batch. Used only to
    sort OAI-PMH backfill records, which carry submission times, not listing dates.
    """
    local = _local(submitted_at)
    day = _at_or_before(local.date() + timedelta(days=1))
    while submission_cutoff(day) <= local:
        day = next_listing_date(day)
    return day
