"""The scheduled poll end to end (recorded feed over local HTTP -> ingest ->
digests in the outbox), and the one-scheduler rule against a real Redis."""

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from arxiv_server import Reply, fixture
from redis import Redis
from rq import cron_scheduler_registry
from sqlalchemy import select

from newsletter import db, replace_settings
from newsletter.models import Delivery, Keyword, Subscriber, SubscriberStatus
from worker.schedule import SCHEDULER_LOCK, SingleCronScheduler, poll

FULL_DAY = "rss_all-archives_2024-11-28.xml"
ALL_ARCHIVES = (
    "astro-ph+cond-mat+physics+quant-ph+math+cs+econ+eess+gr-qc+hep-ex+hep-lat+hep-ph+hep-th"
    "+math-ph+nlin+nucl-ex+nucl-th+q-bio+q-fin+stat"
)


@pytest.fixture
def feed_server(config, server):
    server.serve(f"/rss/{ALL_ARCHIVES}", Reply(body=fixture(FULL_DAY)))
    config.update(
        ARXIV_RSS_URL=server.url + "/rss/",
        ARXIV_ARCHIVE_GROUPS=(ALL_ARCHIVES,),
        ARXIV_RETRIES=0,
    )
    return server


def subscribe(email: str, confirmed_at: datetime) -> Subscriber:
    subscriber = Subscriber(
        email=email,
        email_key=email,
        status=SubscriberStatus.CONFIRMED,
        confirmed_at=confirmed_at,
        keywords=[Keyword(position=0, text="reinforcement learning")],
    )
    db.session().add(subscriber)
    db.session().commit()
    return subscriber


def digests_to(outbox) -> list[str]:
    return sorted(m["To"] for m in outbox.messages() if m["Subject"].startswith("arXiv digest ·"))


def test_poll_ingests_the_due_day_and_sends_its_digests_once(feed_server, app, outbox):
    subscribe("early@example.org", datetime(2024, 11, 27, tzinfo=UTC))
    thursday_morning = datetime(2024, 11, 28, 15, 0, tzinfo=UTC)

    poll(thursday_morning)
    assert digests_to(outbox) == ["early@example.org"]
    [message] = outbox.messages()
    assert "Thu 28 Nov 2024" in message["Subject"]

    poll(thursday_morning)  # complete: fetches nothing, sends nothing
    assert len(feed_server.requests) == 1
    assert digests_to(outbox) == ["early@example.org"]


def test_a_later_poll_retries_the_previous_day_only_for_those_subscribed_then(
    feed_server, app, outbox
):
    subscribe("early@example.org", datetime(2024, 11, 27, tzinfo=UTC))
    poll(datetime(2024, 11, 28, 15, 0, tzinfo=UTC))
    # Confirmed while 28 November was the current day, after its digests went out.
    subscribe("later@example.org", datetime(2024, 11, 29, 12, 0, tzinfo=UTC))
    # Confirmed once 2 December had taken over (its feeds rebuilt at 00:00 ET).
    subscribe("newest@example.org", datetime(2024, 12, 2, 6, 0, tzinfo=UTC))

    # Monday: the feed still shows 28 November, so 2 December is not complete.
    poll(datetime(2024, 12, 2, 15, 0, tzinfo=UTC))
    assert digests_to(outbox) == ["early@example.org", "later@example.org"]
    newest = db.session().scalar(select(Subscriber).where(Subscriber.email == "newest@example.org"))
    assert (
        db.session().scalars(select(Delivery).where(Delivery.subscriber_id == newest.id)).all()
        == []
    )


def scheduler_process(redis_url: str, database_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "SECRET_KEY": "test-secret-key",
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_deployment_runs_exactly_one_scheduler(redis_url, database_url):
    connection = Redis.from_url(redis_url)
    first = scheduler_process(redis_url, database_url)
    try:
        for _ in range(600):
            if connection.get(SCHEDULER_LOCK):
                break
            time.sleep(0.1)
        assert connection.get(SCHEDULER_LOCK), "the first scheduler never took the lock"

        second = scheduler_process(redis_url, database_url)
        output, _ = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "another scheduler is running" in output
        assert "Traceback" not in output
        assert first.poll() is None  # the first one keeps running
    finally:
        first.terminate()
        first.communicate(timeout=30)
    assert connection.get(SCHEDULER_LOCK) is None  # released on a clean stop


def test_a_scheduler_whose_lock_was_taken_stops_cleanly(redis_url, caplog):
    connection = Redis.from_url(redis_url)
    scheduler = SingleCronScheduler(connection=connection, name="this-one")
    scheduler.heartbeat()
    assert connection.get(SCHEDULER_LOCK) == b"this-one"  # a heartbeat holds the lease
    assert not scheduler.lost_lock

    connection.set(SCHEDULER_LOCK, "the-other-one")
    # start() installs RQ's signal handlers in this (pytest's) process: put ours back.
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with caplog.at_level(logging.INFO, logger="worker.schedule"):
            scheduler.start()  # returns (no exception) at its first heartbeat
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert scheduler.lost_lock
    assert "another scheduler (the-other-one) holds the lock; stopping" in caplog.text
    assert "this-one" not in cron_scheduler_registry.get_keys(connection)  # death registered
    assert connection.get(SCHEDULER_LOCK) == b"the-other-one"  # the other's lease untouched
    connection.close()


def test_a_poll_sends_a_dead_workers_rows_once_their_lease_lapsed(
    feed_server, app, outbox, redis_url
):
    from newsletter.models import DeliveryStatus
    from worker.schedule import run_worker

    replace_settings(app, REDIS_URL=redis_url, DELIVERY_LEASE_SECONDS=2)
    subscribe("early@example.org", datetime(2024, 11, 27, tzinfo=UTC))
    subscribe("second@example.org", datetime(2024, 11, 27, tzinfo=UTC))
    thursday_morning = datetime(2024, 11, 28, 15, 0, tzinfo=UTC)
    poll(thursday_morning)  # ingests; dispatch queued on Redis
    run_worker(app, burst=True)  # the dispatch, then the drain jobs it queued
    assert digests_to(outbox) == ["early@example.org", "second@example.org"]

    # A worker took early@'s row again and died holding it (as after a SIGKILL).
    session = db.session()
    row = session.scalars(select(Delivery).order_by(Delivery.id)).first()
    row.status, row.claimed_by = DeliveryStatus.SENDING, "gone-host:4242:dead"
    row.lease_expires_at = db.utcnow() + timedelta(seconds=2)
    session.commit()
    poll(thursday_morning)
    run_worker(app, burst=True)
    assert len(digests_to(outbox)) == 2  # its lease still holds: nobody takes it

    time.sleep(2.1)
    poll(thursday_morning)  # any poll after the lease: no job id or RQ registry in the way
    run_worker(app, burst=True)
    assert digests_to(outbox) == ["early@example.org", "early@example.org", "second@example.org"]
    session.expire_all()
    assert {r.status for r in session.scalars(select(Delivery))} == {DeliveryStatus.SENT}
