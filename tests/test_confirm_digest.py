"""Confirming queues the day's digest at once (worker.jobs.dispatch_confirmed_digest).

A subscriber who confirms after the day's dispatch gets that day's digest
from the confirm request's job, not at the next poll, through the same ledger:
one row, one email, whether a poll runs before, after or at the same moment.
Real app, real database, aiosmtpd on 127.0.0.1, the bundled demo day.
"""

import re
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from redis import Redis
from rq import Queue
from smtp_server import SmtpSink, run_smtp
from sqlalchemy import select, update

from newsletter import create_app, db, replace_settings
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Keyword,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import make_token
from worker import calendar, jobs
from worker.delivery.dispatch import dispatch_digests
from worker.demo.load import load_demo
from worker.queue import QUEUE_NAME
from worker.schedule import AppWorker

DEMO = date(2026, 5, 29)  # a Friday; its feed rebuild is Fri 29 May 04:00 UTC
DP = "diffusion policy"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def sink(config):
    handler = SmtpSink()
    with run_smtp(handler) as port:
        config.update(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=port,
            SMTP_SECURITY="none",
            SMTP_TIMEOUT=10,
            SMTP_RETRY_DELAY=0.01,
        )
        yield handler


@pytest.fixture
def demo(app) -> date:
    session = db.session()
    listing_date = load_demo(session)
    session.commit()
    return listing_date


def add_subscriber(
    email: str,
    *,
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    confirmed_at: datetime | None = None,
    delivery_hour: int | None = None,
    language: str = "en",
) -> Subscriber:
    session = db.session()
    subscriber = Subscriber(
        email=email,
        email_key=email.casefold(),
        status=status,
        confirmed_at=confirmed_at,
        language=language,
        timezone="UTC",
        delivery_hour=delivery_hour,
    )
    subscriber.keywords = [Keyword(position=0, text=DP)]
    session.add(subscriber)
    session.commit()
    return subscriber


def rows_of(subscriber: Subscriber) -> list[Delivery]:
    session = db.session()
    session.expire_all()
    return list(session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber.id)))


def recipients(sink: SmtpSink) -> Counter:
    return Counter(message["To"] for message in sink.messages())


def move_demo_to(listing_date: date) -> None:
    """Make the demo papers today's due listing date (the view's job reads the clock)."""
    session = db.session()
    session.execute(
        update(Paper).where(Paper.listing_date == DEMO).values(listing_date=listing_date)
    )
    session.execute(
        update(ListingDay).where(ListingDay.listing_date == DEMO).values(listing_date=listing_date)
    )
    session.commit()


# --- which date the poll would give a subscriber (pure) ---

REBUILD = calendar.feed_rebuild_instant(DEMO)
PREVIOUS = calendar.previous_listing_date(DEMO)


@pytest.mark.parametrize(
    ("complete", "confirmed_at", "expected"),
    [
        ({DEMO, PREVIOUS}, REBUILD + timedelta(hours=1), DEMO),  # the due date first
        ({DEMO}, REBUILD - timedelta(days=3), DEMO),
        ({PREVIOUS}, REBUILD - timedelta(hours=1), PREVIOUS),  # subscribed while it was current
        ({PREVIOUS}, REBUILD + timedelta(hours=1), None),  # joined after it: the poll gives none
        ({PREVIOUS}, None, None),
        (set(), REBUILD - timedelta(days=3), None),  # nothing complete: the poll sends later
    ],
)
def test_the_date_is_the_latest_complete_one_the_poll_would_dispatch(
    complete, confirmed_at, expected
):
    now = REBUILD + timedelta(hours=2)
    assert calendar.due_listing_date(now) == DEMO
    assert jobs.listing_date_for_subscriber(now, confirmed_at, complete.__contains__) == expected


# --- through the confirm page ---


def test_confirming_after_the_days_dispatch_sends_that_days_digest_at_once(sink, demo, client):
    due = calendar.due_listing_date(db.utcnow())
    move_demo_to(due)
    early = add_subscriber("early@example.org", confirmed_at=db.utcnow() - timedelta(days=1))
    assert dispatch_digests(due).queued == 1  # the poll's dispatch of the day
    assert recipients(sink) == Counter({early.email: 1})

    late = add_subscriber("late@example.org", status=SubscriberStatus.UNCONFIRMED)
    path = f"/confirm/{make_token('test-secret-key', 'confirm', late.public_id)}"
    csrf = CSRF.search(client.get(path).get_data(as_text=True)).group(1)
    response = client.post(path, data={"csrf_token": csrf})

    assert response.status_code == 302
    # No Redis here: the job ran in the request, so the digest is already sent.
    assert recipients(sink) == Counter({early.email: 1, late.email: 1})
    [row] = rows_of(late)
    assert (row.listing_date, row.status) == (due, DeliveryStatus.SENT)
    # The next poll finds the row made: nothing new, nothing sent again.
    again = dispatch_digests(due)
    assert (again.queued, again.skipped) == (0, 0)
    # Confirming twice queues nothing more either.
    client.post(path, data={"csrf_token": csrf})
    assert sink.count() == 2


def test_with_rq_the_confirm_queues_one_job_that_a_worker_runs(config, redis_url, sink, demo):
    config.update(REDIS_URL=redis_url)
    app = create_app(config)
    with app.app_context():
        due = calendar.due_listing_date(db.utcnow())
        move_demo_to(due)
        late = add_subscriber("late@example.org", status=SubscriberStatus.UNCONFIRMED)
        client = app.test_client()
        path = f"/confirm/{make_token('test-secret-key', 'confirm', late.public_id)}"
        csrf = CSRF.search(client.get(path).get_data(as_text=True)).group(1)
        assert client.post(path, data={"csrf_token": csrf}).status_code == 302
        assert sink.count() == 0  # the request only queued the job
        connection = Redis.from_url(redis_url)
        queue = Queue(QUEUE_NAME, connection=connection)
        assert [job.func_name for job in queue.jobs] == ["worker.jobs.dispatch_confirmed_digest"]
        AppWorker([queue], connection=connection, app=app).work(burst=True)
        connection.close()
        assert recipients(sink) == Counter({late.email: 1})
        assert [row.status for row in rows_of(late)] == [DeliveryStatus.SENT]
    app.extensions["db_engine"].dispose()


def test_the_job_makes_only_this_subscribers_row(sink, demo, app):
    now = datetime(2026, 5, 29, 13, 0, tzinfo=UTC)
    others = [add_subscriber(f"other{n}@example.org", confirmed_at=now) for n in range(3)]
    new = add_subscriber("new@example.org", confirmed_at=now)

    summary = jobs.dispatch_confirmed_digest(new.id, now.isoformat())

    assert (summary["listing_date"], summary["queued"]) == (DEMO, 1)
    assert recipients(sink) == Counter({new.email: 1})
    assert all(rows_of(other) == [] for other in others)


def test_a_subscriber_not_due_yet_gets_nothing_now_and_the_poll_sends_it(sink, demo, app):
    now = datetime(2026, 5, 29, 13, 0, tzinfo=UTC)
    evening = add_subscriber("evening@example.org", confirmed_at=now, delivery_hour=20)

    summary = jobs.dispatch_confirmed_digest(evening.id, now.isoformat())
    assert (summary["queued"], summary["held"]) == (0, 1)
    assert rows_of(evening) == [] and sink.count() == 0

    poll = dispatch_digests(DEMO, now=datetime(2026, 5, 29, 20, 0, tzinfo=UTC))
    assert poll.queued == 1
    assert recipients(sink) == Counter({evening.email: 1})


def test_a_bilingual_subscriber_waits_for_the_translation_as_dispatch_does(sink, demo, app):
    now = datetime(2026, 5, 29, 13, 0, tzinfo=UTC)
    day = db.session().get(ListingDay, DEMO)
    day.completed_at, day.translated_at = now - timedelta(minutes=5), None
    db.session().commit()
    replace_settings(app, TRANSLATION_DEADLINE_MINUTES=60, TRANSLATION_BACKEND="recorded")
    bilingual = add_subscriber("zh@example.org", confirmed_at=now, language="en+zh")

    summary = jobs.dispatch_confirmed_digest(bilingual.id, now.isoformat())
    assert (summary["queued"], summary["held"]) == (0, 1)
    assert sink.count() == 0
    # Past the deadline it goes, as the poll's dispatch would send it.
    later = now + timedelta(hours=1)
    assert jobs.dispatch_confirmed_digest(bilingual.id, later.isoformat())["queued"] == 1
    assert recipients(sink) == Counter({bilingual.email: 1})


def test_nothing_for_the_unconfirmed_the_unknown_or_a_date_the_poll_would_not_give(sink, demo, app):
    now = datetime(2026, 5, 29, 13, 0, tzinfo=UTC)
    pending = add_subscriber("pending@example.org", status=SubscriberStatus.UNCONFIRMED)
    assert jobs.dispatch_confirmed_digest(pending.id, now.isoformat()) is None
    assert jobs.dispatch_confirmed_digest(10**9, now.isoformat()) is None
    # Monday 1 June is due but not ingested; 29 May is complete, but the poll
    # gives it only to those confirmed before 1 June took over (04:00 UTC).
    monday = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    reader = add_subscriber("reader@example.org", confirmed_at=monday)
    assert jobs.dispatch_confirmed_digest(reader.id, monday.isoformat()) is None
    assert sink.count() == 0 and rows_of(reader) == []
    weekend = add_subscriber("weekend@example.org", confirmed_at=datetime(2026, 5, 30, tzinfo=UTC))
    assert jobs.dispatch_confirmed_digest(weekend.id, monday.isoformat())["queued"] == 1
    assert [row.listing_date for row in rows_of(weekend)] == [DEMO]


@pytest.mark.parametrize("rounds", range(3))
def test_a_confirm_racing_a_poll_makes_one_row_and_one_email(sink, demo, app, rounds):
    now = datetime(2026, 5, 29, 13, 0, tzinfo=UTC)
    racer = add_subscriber("racer@example.org", confirmed_at=now)
    sink.hold = 0.01  # keep both at work at the same time
    start = threading.Barrier(2)
    results, errors = {}, []

    def run(name, step):
        with app.app_context():
            try:
                start.wait()
                results[name] = step()
            except Exception as error:  # reported below; a thread cannot fail the test itself
                errors.append(error)

    threads = [
        threading.Thread(
            target=run,
            args=("confirm", lambda: jobs.dispatch_confirmed_digest(racer.id, now.isoformat())),
        ),
        threading.Thread(target=run, args=("poll", lambda: dispatch_digests(DEMO, now))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert results["confirm"]["queued"] + results["poll"].queued == 1
    [row] = rows_of(racer)
    assert row.status is DeliveryStatus.SENT and row.attempts == 1
    assert recipients(sink) == Counter({racer.email: 1})
