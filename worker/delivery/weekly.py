"""Daily or weekly digests: which listing dates a subscriber's next row covers, and when.

Used by dispatch (worker/delivery/dispatch.py) for every page of confirmed
subscribers: two queries read each one's last ledger row (`last_rows`), and
`row_start` (pure) decides whether a row is made now and from which listing
date it covers. The ledger stays one row per subscriber per listing date: a
weekly row is keyed by the listing date it is made for (its last) and stores
`first_listing_date`; its sections are fixed at dispatch like a daily row's,
and sending renders it with the DayDigest of that range
(worker/digest/day_cache.py).

Decisions (issue 12 item 2):
- A weekly digest is made on the subscriber's weekday (0 = Monday, their
  timezone), from their delivery hour (from midnight without one) for a
  day, by the dispatch of the latest complete listing date, once that date
  is at least the one due at that hour (`calendar.due_listing_date`): it
  holds every date announced by then. Once: a row for that date or later
  exists then. If that day passes without a dispatch (scheduler down), with
  no new listing date (a week of holidays) or before the due date completed,
  the next weekday's digest covers both weeks: nothing is skipped. A
  subscriber with no row yet gets their first on the first weekday after
  confirming.
- It covers the listing dates after the subscriber's last row (daily or
  weekly, sent or skipped) up to the date it is made for; without a row in
  the last MAX_SPAN_DAYS, the week before that date. So the first weekly
  after daily starts after the last daily, and a weekly never repeats a date.
- Weekly -> daily: the first daily row after weekly days covers the dates
  since the subscriber's last row (a weekly one, or a daily one before they
  chose weekly: `Subscriber.frequency_changed_at` says so), then daily as
  usual. Otherwise a daily row is of its date alone, as before (a missed
  daily date stays missed), and never of a date a later weekly row covered.
- Two dispatches that read the same last row make the same first date: the
  unique (subscriber_id, first_listing_date) lets one of them insert.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from newsletter.models import WEEKLY, Delivery
from worker import calendar
from worker.digest.core import subscriber_zone

# How far back a row's coverage reaches: a subscriber back from a long pause
# gets the last week, not months of papers.
MAX_SPAN_DAYS = 35


@dataclass(frozen=True)
class LastRow:
    """A subscriber's latest ledger row: the dates it covered and when it was made."""

    listing_date: date
    first_listing_date: date | None
    created_at: datetime


@dataclass(frozen=True)
class Schedule:
    """What `row_start` needs to know of a subscriber."""

    frequency: str
    weekday: int | None
    timezone: str
    delivery_hour: int | None
    confirmed_at: datetime | None
    frequency_changed_at: datetime | None = None


def last_rows(
    session: Session, subscriber_ids: Collection[int], listing_date: date
) -> dict[int, LastRow]:
    """Each subscriber's latest row of the last MAX_SPAN_DAYS (two queries per page).

    First each one's latest date, read from the (subscriber_id, listing_date)
    index alone; then those rows by key. One joined query made PostgreSQL read
    every row of the window (3x slower with 20 rows a subscriber).
    """
    floor = listing_date - timedelta(days=MAX_SPAN_DAYS)
    ids = sorted(subscriber_ids)
    if not ids:
        return {}
    keys = session.execute(
        select(Delivery.subscriber_id, func.max(Delivery.listing_date))
        .where(Delivery.subscriber_id.in_(ids), Delivery.listing_date >= floor)
        .group_by(Delivery.subscriber_id)
    ).all()
    if not keys:
        return {}
    # Grouped by date (a page's last rows share one or two): a 1,000-pair
    # (subscriber_id, listing_date) IN took PostgreSQL a second to plan.
    by_date: dict[date, list[int]] = {}
    for subscriber_id, last in keys:
        if subscriber_id is not None:  # only the page's subscribers are asked for
            by_date.setdefault(last, []).append(subscriber_id)
    rows = session.execute(
        select(
            Delivery.subscriber_id,
            Delivery.listing_date,
            Delivery.first_listing_date,
            Delivery.created_at,
        ).where(
            or_(
                *(
                    and_(Delivery.listing_date == last, Delivery.subscriber_id.in_(ids))
                    for last, ids in by_date.items()
                )
            )
        )
    )
    # Only the page's subscribers are asked for: the id is never an erased row's None.
    return {
        id_: LastRow(listing_date, first, created_at)
        for id_, listing_date, first, created_at in rows
        if id_ is not None
    }


def weekly_slot(now: datetime, schedule: Schedule) -> datetime | None:
    """The start of the subscriber's weekly slot if `now` is in it: a day from their weekday's hour.

    A day, not the rest of the weekday: at 23:00 a slot would last an hour,
    shorter than a bilingual digest may wait for its translation.
    """
    if schedule.weekday is None:
        return None
    zone = subscriber_zone(schedule.timezone)
    today = now.astimezone(zone).date()
    for day in (today, today - timedelta(days=1)):
        if day.weekday() == schedule.weekday:
            start = datetime.combine(day, time(schedule.delivery_hour or 0), zone)
            if start <= now < start + timedelta(days=1):
                return start
    return None


def row_start(
    listing_date: date,
    now: datetime,
    schedule: Schedule,
    last: LastRow | None,
    *,
    latest: bool,
) -> date | None:
    """The first listing date a new row for `listing_date` covers, or None: no row now (pure).

    `listing_date` itself: a daily row of that date alone. `latest`: no later
    listing date is complete (weekly rows are made only for such a date).
    """
    floor = calendar.next_listing_date(listing_date - timedelta(days=MAX_SPAN_DAYS))
    if schedule.frequency != WEEKLY:
        changed = schedule.frequency_changed_at
        if last is not None and last.listing_date > listing_date:
            covered = (
                last.first_listing_date is not None and last.first_listing_date <= listing_date
            )
            return None if covered else listing_date
        if last is not None and (
            last.first_listing_date is not None
            or (changed is not None and changed > last.created_at)
        ):
            # The first daily after weekly also brings the dates since the last row.
            return min(max(calendar.next_listing_date(last.listing_date), floor), listing_date)
        return listing_date
    slot = weekly_slot(now, schedule)
    if slot is None or not latest:
        return None
    wanted = calendar.due_listing_date(slot)
    if listing_date < wanted:
        return None  # the date due at the weekday's hour is not complete yet
    if last is not None:
        if last.listing_date >= wanted:
            return None  # made already (or a daily row had every date)
        return max(calendar.next_listing_date(last.listing_date), floor)
    if schedule.confirmed_at is not None and schedule.confirmed_at >= slot:
        return None  # confirmed during the slot: the first weekly comes next week
    return max(calendar.next_listing_date(listing_date - timedelta(days=7)), floor)


def covered_dates(first: date, last: date) -> list[date]:
    """The listing dates first..last."""
    dates = []
    day = first
    while day <= last:
        if calendar.is_listing_date(day):
            dates.append(day)
        day += timedelta(days=1)
    return dates
