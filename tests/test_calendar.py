import csv
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker import calendar

ET = ZoneInfo("America/New_York")


def et(*args) -> datetime:
    return datetime(*args, tzinfo=ET)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# instant -> (listing date of the latest announcement, due listing date for the feeds)
CASES = [
    # An ordinary week: Wed 2024-11-27 20:00 ET announces Thu 2024-11-28.
    (et(2024, 11, 27, 19, 59), date(2024, 11, 27), date(2024, 11, 27)),
    (et(2024, 11, 27, 20, 0), date(2024, 11, 28), date(2024, 11, 27)),
    # Between 20:00 and the midnight rebuild the feeds still show the previous day.
    (et(2024, 11, 27, 23, 59), date(2024, 11, 28), date(2024, 11, 27)),
    (et(2024, 11, 28, 0, 0), date(2024, 11, 28), date(2024, 11, 28)),
    (et(2024, 11, 28, 15, 0), date(2024, 11, 28), date(2024, 11, 28)),
    # Thanksgiving: no announcement Thu 28 Nov evening, so no listing Fri 29 Nov.
    (et(2024, 11, 28, 20, 30), date(2024, 11, 28), date(2024, 11, 28)),
    (et(2024, 11, 29, 12, 0), date(2024, 11, 28), date(2024, 11, 28)),
    # Weekend: nothing Friday or Saturday evening; Sunday 20:00 announces Monday.
    (et(2024, 11, 30, 12, 0), date(2024, 11, 28), date(2024, 11, 28)),
    (et(2024, 12, 1, 19, 59), date(2024, 11, 28), date(2024, 11, 28)),
    (et(2024, 12, 1, 20, 0), date(2024, 12, 2), date(2024, 11, 28)),
    (et(2024, 12, 2, 0, 30), date(2024, 12, 2), date(2024, 12, 2)),
    # An ordinary Friday: announced Thu 20:00, due from Fri 00:00 until Mon 00:00.
    (et(2026, 9, 24, 20, 0), date(2026, 9, 25), date(2026, 9, 24)),
    (et(2026, 9, 26, 23, 0), date(2026, 9, 25), date(2026, 9, 25)),
    # Spring forward (Sun 2025-03-09): 20:00 was 01:00 UTC before, 00:00 UTC after.
    (utc(2025, 3, 7, 0, 59), date(2025, 3, 6), date(2025, 3, 6)),  # Thu 19:59 EST
    (utc(2025, 3, 7, 1, 0), date(2025, 3, 7), date(2025, 3, 6)),  # Thu 20:00 EST
    (utc(2025, 3, 9, 23, 59), date(2025, 3, 7), date(2025, 3, 7)),  # Sun 19:59 EDT
    (utc(2025, 3, 10, 0, 0), date(2025, 3, 10), date(2025, 3, 7)),  # Sun 20:00 EDT
    (utc(2025, 3, 10, 3, 59), date(2025, 3, 10), date(2025, 3, 7)),  # Sun 23:59 EDT
    (utc(2025, 3, 10, 4, 0), date(2025, 3, 10), date(2025, 3, 10)),  # Mon 00:00 EDT
    # Fall back (Sun 2025-11-02): 20:00 EDT = 00:00 UTC before, 20:00 EST = 01:00 UTC after.
    (utc(2025, 10, 31, 0, 0), date(2025, 10, 31), date(2025, 10, 30)),  # Thu 20:00 EDT
    (utc(2025, 11, 3, 0, 59), date(2025, 10, 31), date(2025, 10, 31)),  # Sun 19:59 EST
    (utc(2025, 11, 3, 1, 0), date(2025, 11, 3), date(2025, 10, 31)),  # Sun 20:00 EST
    (utc(2025, 11, 3, 4, 59), date(2025, 11, 3), date(2025, 10, 31)),  # Sun 23:59 EST
    (utc(2025, 11, 3, 5, 0), date(2025, 11, 3), date(2025, 11, 3)),  # Mon 00:00 EST
    # The ambiguous hour of the fall-back night is still Sunday, well before 20:00.
    (datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=ET), date(2025, 10, 31), date(2025, 10, 31)),
    # Independence Day 2025: no announcement Sun 6 Jul, so no listing Mon 7 Jul.
    (et(2025, 7, 6, 21, 0), date(2025, 7, 4), date(2025, 7, 4)),
    (et(2025, 7, 7, 23, 59), date(2025, 7, 8), date(2025, 7, 4)),
    (et(2025, 7, 8, 0, 0), date(2025, 7, 8), date(2025, 7, 8)),
    # An instant in another zone is converted, not read as ET wall time.
    (
        datetime(2024, 11, 28, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        date(2024, 11, 28),
        date(2024, 11, 27),
    ),
]


@pytest.mark.parametrize(("instant", "listing", "due"), CASES)
def test_listing_and_due_dates(instant, listing, due):
    assert calendar.listing_date_for(instant) == listing
    assert calendar.due_listing_date(instant) == due


@pytest.mark.parametrize(
    ("listing_date", "expected_utc"),
    [
        (date(2024, 11, 28), utc(2024, 11, 28, 1, 0)),  # Wed 20:00 EST
        (date(2024, 12, 2), utc(2024, 12, 2, 1, 0)),  # Monday: announced Sunday
        (date(2025, 3, 10), utc(2025, 3, 10, 0, 0)),  # first Sunday of EDT
        (date(2025, 11, 3), utc(2025, 11, 3, 1, 0)),  # first Sunday of EST
    ],
)
def test_announcement_instant(listing_date, expected_utc):
    assert calendar.announcement_instant(listing_date) == expected_utc
    assert calendar.listing_date_for(expected_utc) == listing_date
    assert calendar.listing_date_for(
        expected_utc - timedelta(seconds=1)
    ) == calendar.previous_listing_date(listing_date)


@pytest.mark.parametrize(
    ("day", "previous", "following"),
    [
        (date(2024, 11, 27), date(2024, 11, 26), date(2024, 11, 28)),
        (date(2024, 11, 28), date(2024, 11, 27), date(2024, 12, 2)),  # Thanksgiving Friday skipped
        (date(2024, 11, 30), date(2024, 11, 28), date(2024, 12, 2)),  # from a Saturday
        (date(2025, 7, 4), date(2025, 7, 3), date(2025, 7, 8)),
        (date(2025, 12, 25), date(2025, 12, 24), date(2025, 12, 29)),  # Christmas evening skipped
    ],
)
def test_previous_and_next_listing_dates(day, previous, following):
    assert calendar.previous_listing_date(day) == previous
    assert calendar.next_listing_date(day) == following


@pytest.mark.parametrize(
    "day", [date(2024, 11, 29), date(2024, 11, 30), date(2024, 12, 1), date(2025, 7, 7)]
)
def test_no_announcement_for_non_listing_dates(day):
    assert not calendar.is_listing_date(day)
    with pytest.raises(ValueError, match="not an arXiv listing date"):
        calendar.announcement_instant(day)


@pytest.mark.parametrize(
    ("submitted", "listing"),
    [
        (et(2024, 11, 26, 13, 59), date(2024, 11, 27)),  # Tue before 14:00 -> Tue 20:00
        (et(2024, 11, 26, 14, 0), date(2024, 11, 28)),  # after the cutoff -> Wed 20:00
        (et(2024, 11, 27, 15, 0), date(2024, 12, 2)),  # Thanksgiving evening skipped
        (et(2024, 12, 5, 15, 0), date(2024, 12, 9)),  # Thu-Fri 14:00 -> Sunday 20:00
        (et(2024, 12, 6, 15, 0), date(2024, 12, 10)),  # Fri-Mon 14:00 -> Monday 20:00
        (et(2024, 12, 8, 10, 0), date(2024, 12, 10)),
    ],
)
def test_listing_date_for_submission(submitted, listing):
    assert calendar.listing_date_for_submission(submitted) == listing


@pytest.mark.parametrize(
    "function",
    [
        calendar.listing_date_for,
        calendar.due_listing_date,
        calendar.listing_date_for_submission,
        calendar.next_expected,
    ],
)
def test_naive_datetimes_are_refused(function):
    with pytest.raises(ValueError, match="naive"):
        function(datetime(2024, 11, 27, 20, 0))


def test_next_expected_gives_the_feed_rebuild():
    upcoming, rebuild = calendar.next_expected(et(2024, 11, 28, 21, 0))
    assert upcoming == date(2024, 12, 2)
    assert rebuild == et(2024, 12, 2, 0, 0)


def test_holiday_table_is_consistent():
    """Each row's listing date is the day after the evening arXiv skips, and a weekday."""
    lines = [
        line for line in calendar.HOLIDAYS_FILE.read_text().splitlines() if not line.startswith("#")
    ]
    rows = list(csv.DictReader(lines))
    assert len(rows) == len(calendar.holidays()) > 20
    years = {date.fromisoformat(r["listing_date"]).year for r in rows}
    assert {2024, 2025, 2026, 2027} <= years
    for row in rows:
        listing = date.fromisoformat(row["listing_date"])
        weekday, evening = row["skipped_announcement_evening"].split()
        assert date.fromisoformat(evening) + timedelta(days=1) == listing, row
        assert date.fromisoformat(evening).strftime("%a") == weekday, row
        assert listing.weekday() < 5, row
        assert row["status"] in ("published", "assumed"), row
