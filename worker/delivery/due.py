"""When a subscriber's digest of a listing date may be made (pure).

Used by dispatch (worker/delivery/dispatch.py) for every confirmed subscriber
of a page. A digest is released at the subscriber's delivery hour, local time,
at or after the day's announcement (or at the announcement without one); a
bilingual digest also waits for the day's translation, but never past
TRANSLATION_DEADLINE_MINUTES after the day completed.
"""

from datetime import date, datetime, time, timedelta
from functools import lru_cache

from newsletter.models import ListingDay
from worker import calendar
from worker.digest import core as digest


@lru_cache(maxsize=4096)
def release_instant(listing_date: date, timezone: str, delivery_hour: int | None) -> datetime:
    """The first `delivery_hour`:00 local time at or after the day's announcement.

    Without a delivery hour a digest goes as soon as it is ready, i.e. from
    the announcement on. Cached: dispatch asks once per subscriber.
    """
    announced = calendar.announcement_instant(listing_date)
    if delivery_hour is None:
        return announced
    zone = digest.subscriber_zone(timezone)
    local_day = announced.astimezone(zone).date()
    candidate = datetime.combine(local_day, time(delivery_hour), zone)
    if candidate < announced:
        candidate = datetime.combine(local_day + timedelta(days=1), time(delivery_hour), zone)
    return candidate


def is_due(
    day: ListingDay,
    now: datetime,
    translation_deadline: timedelta,
    *,
    timezone: str,
    delivery_hour: int | None,
    bilingual: bool,
) -> bool:
    """Whether a subscriber's digest of a complete `day` may be made at `now`."""
    if day.completed_at is None:
        return False  # an incomplete day has no digest yet
    if now < release_instant(day.listing_date, timezone, delivery_hour):
        return False
    if bilingual and day.translated_at is None:
        # Never held indefinitely: past the deadline it goes without the missing translations.
        return now >= day.completed_at + translation_deadline
    return True
