"""Daily or weekly digests (issue 12 item 2): the ledger side, on SQLite and PostgreSQL.

Real ingest (worker/arxiv/store.py, completeness.py) of one `cs` group per
listing date, the real dispatch and drain (worker/delivery/dispatch.py,
sending.py) to aiosmtpd on 127.0.0.1, the digest web page. Every listing
date carries one paper that the subscribers' line matches, so "each paper
exactly once" is checked across all the emails a subscriber got. November
2026: Friday the 27th is arXiv's Thanksgiving holiday (no listing).
"""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import current_app
from smtp_server import SmtpSink, run_smtp
from test_delivery import add_subscriber, deliveries
from test_late_papers import ingest, item

from newsletter import db, replace_settings
from newsletter.config import settings
from newsletter.models import Delivery, DeliveryStatus, Subscriber
from worker import calendar
from worker.delivery import claims
from worker.delivery.dispatch import dispatch_digests
from worker.delivery.preview import preview_digest
from worker.delivery.rows import insert_statement, rows_made
from worker.delivery.sending import drain_day
from worker.delivery.weekly import LastRow, Schedule, row_start

DP = "diffusion policy"
MON = 0
ARXIV_ID = re.compile(r"https://arxiv\.org/abs/(2611\.\d{5})")


def paper_id(day: date) -> str:
    return f"2611.{day.month:02d}{day.day:03d}"


def publish(day: date) -> None:
    """The day's one matching paper and one other, its group complete."""
    papers = [
        item(paper_id(day), f"Diffusion policy notes of {day:%d %b}", "cs.RO"),
        item(f"2611.9{day.month:02d}{day.day:02d}", f"Graph colouring of {day:%d %b}", "cs.DM"),
    ]
    assert ingest(day, "cs", papers)


def listing_dates(first: date, last: date) -> list[date]:
    return [
        d
        for d in (first + timedelta(n) for n in range((last - first).days + 1))
        if calendar.is_listing_date(d)
    ]


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def run_days(days: list[date], hours=(2, 9, 23)) -> None:
    """Publish each date and dispatch it as the polls of that (UTC) day would."""
    for day in days:
        publish(day)
        for hour in hours:
            dispatch_digests(day, at(day, hour))


def received(sink: SmtpSink, email: str) -> list[tuple[str, list[str]]]:
    """(subject, the matching papers' ids in the text) of each email to `email`, in order."""
    found = []
    for message in sink.messages():
        if message["To"] == email:
            text = message.get_body(("plain",)).get_content()
            ids = [i for i in dict.fromkeys(ARXIV_ID.findall(text)) if not i.startswith("2611.9")]
            found.append((message["Subject"], ids))
    return found


def make_weekly(subscriber: Subscriber, weekday: int = MON, hour: int | None = 8) -> None:
    """As the manage page does (newsletter/subscription_forms.py)."""
    subscriber.frequency, subscriber.weekday, subscriber.delivery_hour = "weekly", weekday, hour
    subscriber.frequency_changed_at = datetime.now(UTC)
    db.session().commit()


def set_daily(subscriber: Subscriber) -> None:
    subscriber.frequency, subscriber.frequency_changed_at = "daily", datetime.now(UTC)
    db.session().commit()


def rows_of(subscriber: Subscriber) -> list[Delivery]:
    return [row for row in deliveries() if row.subscriber_id == subscriber.id]


@pytest.fixture
def sink(config):
    handler = SmtpSink()
    with run_smtp(handler) as port:
        config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none")
        yield handler


@pytest.fixture
def cs(config):
    config["ARXIV_ARCHIVE_GROUPS"] = ["cs"]


@pytest.fixture
def readers(cs, sink, app):
    """A weekly (Monday, 08:00 UTC) and a daily subscriber, confirmed before Tue 17 Nov."""
    weekly = add_subscriber("wes@example.com", [DP])
    daily = add_subscriber("dai@example.com", [DP])
    for subscriber in (weekly, daily):
        subscriber.confirmed_at = datetime(2026, 11, 16, 12, tzinfo=UTC)
    make_weekly(weekly)
    return weekly, daily


def test_a_weekly_digest_goes_once_on_its_weekday_and_covers_a_holiday_week(readers, sink):
    weekly, daily = readers
    days = listing_dates(date(2026, 11, 17), date(2026, 11, 30))
    assert date(2026, 11, 27) not in days  # Thanksgiving: no listing
    run_days(days)

    got = received(sink, weekly.email)
    assert [subject.split(" · ")[1] for subject, _ids in got] == [
        "week of Tue 17 Nov – Mon 23 Nov 2026",
        "week of Tue 24 Nov – Mon 30 Nov 2026",
    ]
    # Each date's paper once, in the digest of its week; nothing before 08:00 on Monday.
    assert [set(ids) for _subject, ids in got] == [
        {paper_id(d) for d in days if d <= date(2026, 11, 23)},
        {paper_id(d) for d in days if d > date(2026, 11, 23)},
    ]
    rows = rows_of(weekly)
    assert [(r.first_listing_date, r.listing_date) for r in rows] == [
        (date(2026, 11, 17), date(2026, 11, 23)),
        (date(2026, 11, 24), date(2026, 11, 30)),
    ]
    # The daily subscriber's digests are as before: one per date, its own paper.
    assert [ids for _subject, ids in received(sink, daily.email)] == [[paper_id(d)] for d in days]
    assert all(r.first_listing_date is None for r in rows_of(daily))

    # The header says so too, and the weekly row's page shows the same range.
    message = [m for m in sink.messages() if m["To"] == weekly.email][-1]
    text = message.get_body(("plain",)).get_content()
    assert "Listing date: week of Tue 24 Nov – Mon 30 Nov 2026" in text
    html = message.get_body(("html",)).get_content()
    assert "arXiv digest · week of Tue 24 Nov – Mon 30 Nov 2026" in html
    view = re.search(r'href="http://digest\.test(/digest/[^"]+)"', html).group(1)
    page = current_app.test_client().get(view)
    assert page.status_code == 200
    assert "week of Tue 24 Nov – Mon 30 Nov 2026" in page.get_data(as_text=True)
    assert paper_id(date(2026, 11, 24)) in page.get_data(as_text=True)
    preview = preview_digest(db.session(), settings(), weekly, date(2026, 11, 30))
    assert "week of Tue 24 Nov – Mon 30 Nov 2026" in preview.subject


def test_a_missed_weekday_is_caught_up_by_the_next_one_without_a_gap(readers, sink):
    weekly, _daily = readers
    run_days(listing_dates(date(2026, 11, 17), date(2026, 11, 26)))
    # The scheduler is down from Monday 30 Nov to Tuesday noon: those dates are
    # ingested later, and the weekly's day (from Monday 08:00) passes without a dispatch.
    publish(date(2026, 11, 30))
    publish(date(2026, 12, 1))
    dispatch_digests(date(2026, 12, 1), at(date(2026, 12, 1), 12))
    assert len(received(sink, weekly.email)) == 1
    run_days(listing_dates(date(2026, 12, 2), date(2026, 12, 7)))

    got = received(sink, weekly.email)
    assert [subject.split(" · ")[1] for subject, _ids in got] == [
        "week of Tue 17 Nov – Mon 23 Nov 2026",
        "listing dates Tue 24 Nov – Mon 7 Dec 2026",
    ]
    every = listing_dates(date(2026, 11, 17), date(2026, 12, 7))
    ids = [i for _subject, ids in got for i in ids]
    assert sorted(ids) == sorted(paper_id(d) for d in every)  # each once, none skipped


def test_a_weekday_whose_due_date_is_late_waits_for_it_then_sends_once(readers, sink):
    weekly, _daily = readers
    monday = date(2026, 11, 23)
    run_days(listing_dates(date(2026, 11, 17), date(2026, 11, 20)))
    # Monday 09:00: Monday's feeds are not complete yet; Friday's dispatch runs again.
    dispatch_digests(date(2026, 11, 20), at(monday, 9))
    assert rows_of(weekly) == []
    publish(monday)
    for hour in (10, 11, 23):
        dispatch_digests(date(2026, 11, 20), at(monday, hour))  # the previous date: never weekly
        dispatch_digests(monday, at(monday, hour))
    assert [(r.first_listing_date, r.listing_date) for r in rows_of(weekly)] == [
        (date(2026, 11, 17), monday)
    ]
    assert len(received(sink, weekly.email)) == 1


def test_switching_daily_to_weekly_and_back_loses_and_repeats_no_date(readers, sink):
    _weekly, daily = readers
    run_days(listing_dates(date(2026, 11, 17), date(2026, 11, 25)))
    make_weekly(daily)  # Wednesday evening: weekly from the next Monday
    run_days([date(2026, 11, 26), date(2026, 11, 30)])
    # Monday 30 Nov after its weekly went: back to daily. The poll's dispatch of
    # the previous date (Thu 26) finds it covered by the weekly row.
    set_daily(daily)
    dispatch_digests(date(2026, 11, 26), at(date(2026, 11, 30), 10))
    run_days([date(2026, 12, 1)])
    # Weekly again from Tuesday; switched back to daily on Thursday morning:
    # the first daily brings the dates since the last weekly.
    make_weekly(daily)
    run_days([date(2026, 12, 2)])
    set_daily(daily)
    run_days([date(2026, 12, 3), date(2026, 12, 4)])

    got = received(sink, daily.email)
    labels = [subject.split(" · ")[1] for subject, _ids in got]
    assert labels == [
        "Tue 17 Nov 2026",
        "Wed 18 Nov 2026",
        "Thu 19 Nov 2026",
        "Fri 20 Nov 2026",
        "Mon 23 Nov 2026",
        "Tue 24 Nov 2026",
        "Wed 25 Nov 2026",
        "week of Thu 26 Nov – Mon 30 Nov 2026",  # after the last daily, the 25th
        "Tue 1 Dec 2026",
        "week of Wed 2 Dec – Thu 3 Dec 2026",  # the catch-up daily after weekly
        "Fri 4 Dec 2026",
    ]
    ids = [i for _subject, ids in got for i in ids]
    every = listing_dates(date(2026, 11, 17), date(2026, 12, 4))
    assert sorted(ids) == sorted(paper_id(d) for d in every)  # each once, none skipped


def test_a_weekly_row_whose_worker_died_is_sent_once_after_its_lease(readers, sink, redis_url, app):
    weekly, daily = readers
    run_days(listing_dates(date(2026, 11, 17), date(2026, 11, 20)))
    monday = date(2026, 11, 23)
    publish(monday)
    replace_settings(app, REDIS_URL=redis_url)  # rows only; the drain jobs wait on Redis
    dispatch_digests(monday, at(monday, 9))
    row = rows_of(weekly)[0]
    assert row.status is DeliveryStatus.QUEUED
    # A worker claims Monday's rows and dies before sending any.
    with db.engine().begin() as connection:
        taken = claims.claim_batch(
            connection, monday, "dead", size=10, lease=timedelta(0), max_attempts=3
        )
    assert {c.first_listing_date for c in taken} == {date(2026, 11, 17), None}
    replace_settings(app, REDIS_URL=None)
    before = len(sink.messages())
    for hour in (10, 11):
        dispatch_digests(monday, at(monday, hour))
    got = received(sink, weekly.email)
    assert len(got) == 1 and len(sink.messages()) == before + 2  # the weekly and the daily
    assert got[0][0].split(" · ")[1] == "week of Tue 17 Nov – Mon 23 Nov 2026"
    assert set(got[0][1]) == {paper_id(d) for d in listing_dates(date(2026, 11, 17), monday)}
    message = [m for m in sink.messages() if m["To"] == weekly.email][0]
    assert message["Message-ID"] == row.message_id
    assert [r.status for r in rows_of(weekly)] == [DeliveryStatus.SENT]
    assert drain_day(monday.isoformat()).sent == 0


def test_two_dispatches_that_read_the_same_last_row_make_one_weekly_row(readers):
    weekly, _daily = readers
    session = db.session()
    insert = insert_statement(session)

    def row(listing_date: date, message_id: str) -> dict:
        return {
            "subscriber_id": weekly.id,
            "listing_date": listing_date,
            "first_listing_date": date(2026, 11, 17),
            "status": DeliveryStatus.QUEUED,
            "message_id": message_id,
            "sections": [],
            "paper_count": 0,
            "attempts": 0,
            "created_at": datetime.now(UTC),
            "error": None,
        }

    assert rows_made(session, insert, [row(date(2026, 11, 23), "<a@x>")]) == 1
    # A racing dispatch of the next date, from the same last row: same first date.
    assert rows_made(session, insert, [row(date(2026, 11, 24), "<b@x>")]) == 0
    session.commit()
    assert len(rows_of(weekly)) == 1


def Last(listing_date: date, first: date | None) -> LastRow:  # noqa: N802 (reads as the row)
    return LastRow(listing_date, first, at(listing_date, 9))


def schedule(frequency="weekly", weekday=MON, timezone="UTC", hour=8, confirmed=None):
    return Schedule(frequency, weekday, timezone, hour, confirmed)


NOV = {day: date(2026, 11, day) for day in range(1, 31)}


@pytest.mark.parametrize(
    ("listing_date", "now", "plan", "last", "latest", "start"),
    [
        # Daily: the date alone; after a weekly row, from the date after it.
        (NOV[24], at(NOV[24], 9), schedule("daily"), None, True, NOV[24]),
        (NOV[24], at(NOV[24], 9), schedule("daily"), Last(NOV[23], None), True, NOV[24]),
        (NOV[26], at(NOV[26], 9), schedule("daily"), Last(NOV[23], NOV[17]), True, NOV[24]),
        # ... and after daily rows, if weekly was chosen since the last one.
        (
            NOV[26],
            at(NOV[26], 9),
            schedule("daily", confirmed=None),
            Last(NOV[23], None),
            True,
            NOV[26],
        ),
        (
            NOV[26],
            at(NOV[26], 9),
            Schedule("daily", None, "UTC", None, None, at(NOV[23], 10)),
            Last(NOV[23], None),
            True,
            NOV[24],
        ),
        # ... not a date a later weekly row covered; yes one a later daily row left out.
        (NOV[20], at(NOV[23], 9), schedule("daily"), Last(NOV[23], NOV[17]), False, None),
        (NOV[20], at(NOV[23], 9), schedule("daily"), Last(NOV[23], None), False, NOV[20]),
        # Weekly: on its weekday from its hour, for the latest date only.
        (NOV[23], at(NOV[23], 7), schedule(), Last(NOV[16], NOV[10]), True, None),
        (NOV[23], at(NOV[23], 8), schedule(), Last(NOV[16], NOV[10]), True, NOV[17]),
        (NOV[23], at(NOV[23], 8), schedule(), Last(NOV[16], NOV[10]), False, None),
        (NOV[24], at(NOV[24], 9), schedule(), Last(NOV[16], NOV[10]), True, None),
        (NOV[23], at(NOV[23], 9), schedule(), Last(NOV[23], NOV[17]), True, None),
        # Without a delivery hour, from midnight; in the subscriber's timezone.
        (NOV[23], at(NOV[23], 0), schedule(hour=None), Last(NOV[16], None), True, NOV[17]),
        (NOV[20], at(NOV[22], 17), schedule(timezone="Asia/Shanghai", hour=1), None, True, NOV[16]),
        (NOV[23], at(NOV[23], 17), schedule(timezone="Asia/Shanghai"), None, True, NOV[17]),
        # The slot lasts a day from the hour: Tuesday 07:59, yes; 08:00, no.
        (
            NOV[24],
            at(NOV[24], 7) + timedelta(minutes=59),
            schedule(),
            Last(NOV[20], None),
            True,
            NOV[23],
        ),
        (NOV[24], at(NOV[24], 8), schedule(), Last(NOV[20], None), True, None),
        # The first weekly: the week before, unless confirmed during the slot.
        (NOV[23], at(NOV[23], 9), schedule(confirmed=at(NOV[23], 8)), None, True, None),
        (NOV[23], at(NOV[23], 9), schedule(confirmed=at(NOV[20], 8)), None, True, NOV[17]),
        # A Friday weekday on a holiday Friday: Thursday's date is the one due.
        (NOV[26], at(NOV[27], 9), schedule(weekday=4), Last(NOV[20], NOV[16]), True, NOV[23]),
    ],
)
def test_row_start(listing_date, now, plan, last, latest, start):
    assert row_start(listing_date, now, plan, last, latest=latest) == start


def test_a_paper_late_for_a_sent_weekly_goes_once_into_the_next_digest(readers, sink):
    weekly, daily = readers
    run_days(listing_dates(date(2026, 11, 17), date(2026, 11, 23)))
    # A paper for Friday 20 Nov reaches us after Monday's weekly digest went.
    late = item("2611.11120", "Diffusion policy that came late", "cs.RO")
    assert ingest(date(2026, 11, 20), "cs", [late])
    run_days(listing_dates(date(2026, 11, 24), date(2026, 12, 7)))

    for subscriber in (weekly, daily):
        texts = [
            m.get_body(("plain",)).get_content()
            for m in sink.messages()
            if m["To"] == subscriber.email
        ]
        carrying = [text for text in texts if late.arxiv_id in text]
        assert len(carrying) == 1, subscriber.email
        assert "listed Fri 20 Nov, arrived late" in carrying[0]
    # The weekly carried it in the next week's digest, the daily in Tuesday's.
    week = [s for s, ids in received(sink, weekly.email) if "2611.11120" in ids]
    assert [s.split(" · ")[1] for s in week] == ["week of Tue 24 Nov – Mon 30 Nov 2026"]
