"""newsletter/health.py: GET /healthz on the real app, database and Redis, and the
listing-date rule on arXiv's real calendar (weekends, holidays)."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import free_port
from sqlalchemy import create_engine

from newsletter import db, replace_settings
from newsletter.health import listing_status
from newsletter.models import Delivery, DeliveryStatus, ListingDay, Subscriber, SubscriberStatus
from worker import calendar

THANKSGIVING_WEEK_THURSDAY = date(2024, 11, 28)  # Fri 29 is an arXiv holiday


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "latest, now, ok, next_due, overdue_hours",
    [
        # Thu 28 Nov 2024, then a holiday and a weekend: Mon 2 Dec is next, due
        # 06:00 ET (11:00 UTC) with the 6-hour ingest deadline.
        (THANKSGIVING_WEEK_THURSDAY, utc(2024, 11, 30, 12), True, date(2024, 12, 2), 0.0),
        (THANKSGIVING_WEEK_THURSDAY, utc(2024, 12, 2, 10), True, date(2024, 12, 2), 0.0),
        # Past the deadline but within the 2-hour grace.
        (THANKSGIVING_WEEK_THURSDAY, utc(2024, 12, 2, 12, 30), True, date(2024, 12, 2), 1.5),
        (THANKSGIVING_WEEK_THURSDAY, utc(2024, 12, 2, 14), False, date(2024, 12, 2), 3.0),
        # Christmas: no listing dated Thu 26 Dec; Fri 27 is next.
        (date(2024, 12, 25), utc(2024, 12, 26, 20), True, date(2024, 12, 27), 0.0),
        (date(2024, 12, 25), utc(2024, 12, 27, 14), False, date(2024, 12, 27), 3.0),
        # A whole listing date missed, on an ordinary week.
        (date(2025, 3, 3), utc(2025, 3, 5, 18), False, date(2025, 3, 4), 31.0),
        (None, utc(2025, 3, 5, 18), False, None, 0.0),
    ],
)
def test_listing_status_counts_listing_dates_not_hours(latest, now, ok, next_due, overdue_hours):
    status = listing_status(latest, None, now, deadline_hours=6, grace_hours=2)

    assert (status.ok, status.next_due, status.overdue_hours) == (ok, next_due, overdue_hours)


def add_queued(created_at: datetime, next_attempt_at: datetime | None = None) -> Delivery:
    session = db.session()
    n = session.query(Subscriber).count()
    subscriber = Subscriber(
        email=f"r{n}@example.org", email_key=f"r{n}@example.org", status=SubscriberStatus.CONFIRMED
    )
    session.add(subscriber)
    session.flush()
    delivery = Delivery(
        subscriber_id=subscriber.id,
        listing_date=date(2024, 11, 28),
        status=DeliveryStatus.QUEUED,
        message_id=f"<{n}@digest.test>",
        created_at=created_at,
        next_attempt_at=next_attempt_at,
    )
    session.add(delivery)
    session.commit()
    return delivery


def complete(listing_date: date) -> None:
    session = db.session()
    session.add(ListingDay(listing_date=listing_date, completed_at=db.utcnow()))
    session.commit()


def healthz(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


def test_a_service_keeping_up_is_healthy(client):
    now = db.utcnow()
    complete(calendar.previous_listing_date(calendar.due_listing_date(now)))
    complete(calendar.due_listing_date(now))
    add_queued(now - timedelta(minutes=5))
    # Deferred after a 4xx: waiting for its retry is not being stuck.
    add_queued(now - timedelta(hours=5), next_attempt_at=now + timedelta(minutes=10))

    code, body = healthz(client)

    assert code == 200, body
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["database"]["latency_ms"] >= 0
    # Embedded mode (no REDIS_URL): not a failure.
    assert checks["redis"] == {"status": "not configured"}
    assert checks["listing"]["status"] == "ok"
    assert checks["listing"]["latest_complete"] == calendar.due_listing_date(now).isoformat()
    assert checks["listing"]["overdue_hours"] == 0
    assert checks["deliveries"]["status"] == "ok"
    assert checks["deliveries"]["queued"] == 2
    assert 4 <= checks["deliveries"]["oldest_queued_minutes"] <= 6


def test_a_stale_listing_date_and_a_stuck_delivery_fail_with_their_figures(client):
    complete(THANKSGIVING_WEEK_THURSDAY)
    incomplete = ListingDay(listing_date=date(2024, 12, 2), completed_at=None)
    db.session().add(incomplete)
    db.session().commit()
    now = db.utcnow()
    add_queued(now - timedelta(minutes=10))
    add_queued(now - timedelta(hours=3))

    code, body = healthz(client)

    assert code == 503, body
    assert body["status"] == "fail"
    listing, deliveries = body["checks"]["listing"], body["checks"]["deliveries"]
    # The incomplete Monday does not count as the latest complete date.
    assert (listing["status"], listing["latest_complete"], listing["next_due"]) == (
        "fail",
        "2024-11-28",
        "2024-12-02",
    )
    assert listing["overdue_hours"] > 24 * 300
    assert (deliveries["status"], deliveries["queued"], deliveries["max_minutes"]) == (
        "fail",
        2,
        120,
    )
    assert 179 <= deliveries["oldest_queued_minutes"] <= 181
    assert body["checks"]["database"]["status"] == "ok"


def test_nothing_ingested_yet_fails_the_listing_check(client):
    code, body = healthz(client)

    assert code == 503
    assert body["checks"]["listing"]["status"] == "fail"
    assert body["checks"]["listing"]["latest_complete"] is None
    assert body["checks"]["deliveries"] == {
        "status": "ok",
        "queued": 0,
        "oldest_queued_minutes": None,
        "max_minutes": 120,
    }


def test_redis_is_pinged_when_configured(client, app, redis_url):
    replace_settings(app, REDIS_URL=redis_url)
    complete(calendar.due_listing_date(db.utcnow()))

    code, body = healthz(client)

    assert code == 200, body
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["redis"]["latency_ms"] >= 0


def test_lost_redis_and_database_are_a_503_naming_no_setting(client, app, config):
    port = free_port()  # nothing listens there: connections are refused
    replace_settings(app, REDIS_URL=f"redis://:redis-password@127.0.0.1:{port}/0")
    lost = create_engine(
        f"postgresql+psycopg://postgres:db-password@127.0.0.1:{port}/newsletter",
        connect_args={"connect_timeout": 2},
    )
    original = app.extensions["db_engine"]
    app.extensions["db_engine"] = lost
    try:
        response = client.get("/healthz")
    finally:
        app.extensions["db_engine"] = original
        lost.dispose()

    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == {"status": "fail", "error": "OperationalError"}
    assert body["checks"]["listing"]["status"] == "fail"
    assert body["checks"]["deliveries"]["status"] == "fail"
    assert body["checks"]["redis"] == {"status": "fail", "error": "ConnectionError"}
    text = response.get_data(as_text=True)
    for secret in ("password", "127.0.0.1", "redis://", "postgresql", config["SECRET_KEY"]):
        assert secret not in text
    assert json.loads(text) == body
