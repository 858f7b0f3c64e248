"""worker/delivery/dispatch.py, worker/delivery/ledger.py and worker/delivery/sending.py: exactly-once digests over real SMTP.

Every test runs the real dispatch and drain on the test database with
the bundled demo day (2026-05-29, 66 papers) against aiosmtpd on 127.0.0.1;
messages are read back from the SMTP server's log and parsed with the stdlib
email package.
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from urllib.parse import urlparse

import pytest
from smtp_server import SmtpSink, run_smtp
from sqlalchemy import select, update
from tcp_relay import TcpRelay

from newsletter import db, replace_settings
from newsletter.cli import main as cli_main
from newsletter.db import utcnow
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Keyword,
    ListingDay,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import read_token
from worker.delivery.batch import Sender
from worker.delivery.dispatch import dispatch_digests
from worker.delivery.due import is_due, release_instant
from worker.delivery.leases import LedgerConnection
from worker.delivery.sending import _wait_for_other_claims, drain_day
from worker.delivery.summary import CPU_LINE, SendSummary
from worker.demo.load import load_demo

DEMO = date(2026, 5, 29)
RL, DP = "reinforcement learning", "diffusion policy"
NO_MATCH = "quantum chromodynamics lattice"
LINK = re.compile(r"http://digest\.test/[^\s\"'<>]+")
# Link path -> token purpose.
PURPOSES = {
    "manage": "manage",
    "unsubscribe": "unsubscribe",
    "one-click": "unsubscribe",
    "digest": "digest",
    "feed": "feed",
}
CJK = re.compile("[\u4e00-\u9fff]")


@pytest.fixture
def sink(config):
    """A recording SMTP server; the app under test sends to it."""
    handler = SmtpSink()
    with run_smtp(handler) as port:
        config.update(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=port,
            SMTP_SECURITY="none",
            SMTP_TIMEOUT=10,
            SMTP_RETRY_DELAY=0.01,
            DELIVERY_BATCH_SIZE=4,
            # A deferred row waits an hour (then two ...), past any drain however slow,
            # until the test lets the backoff pass (`backoff_passes`).
            DELIVERY_RETRY_SECONDS=3600,
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
    keywords: list[str],
    *,
    language: str = "en",
    timezone: str = "UTC",
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    delivery_hour: int | None = None,
) -> Subscriber:
    session = db.session()
    subscriber = Subscriber(
        email=email,
        email_key=email.casefold(),
        status=status,
        language=language,
        timezone=timezone,
        delivery_hour=delivery_hour,
    )
    subscriber.keywords = [Keyword(position=n, text=text) for n, text in enumerate(keywords)]
    session.add(subscriber)
    session.commit()
    return subscriber


def add_many(count: int, prefix: str = "reader") -> list[Subscriber]:
    # A few keyword lists and languages, so some renders are shared and some are not.
    choices = [([RL, DP], "en"), ([DP], "en"), ([RL, DP], "en+zh"), ([DP, RL], "en+zh")]
    subscribers = []
    for n in range(count):
        keywords, language = choices[n % len(choices)]
        subscribers.append(add_subscriber(f"{prefix}{n}@example.com", keywords, language=language))
    return subscribers


def backoff_passes() -> None:
    """Every deferred row's next try comes due: the ledger's clock moves, not the test's.

    Sleeping through a short backoff raced the drain itself: on a loaded machine a
    drain slower than the backoff retried its own deferred rows.
    """
    session = db.session()
    session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.QUEUED, Delivery.next_attempt_at.is_not(None))
        .values(next_attempt_at=utcnow())
    )
    session.commit()


def deliveries() -> list[Delivery]:
    session = db.session()
    session.expire_all()
    return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def recipients(sink: SmtpSink) -> Counter:
    """The To of each message the sink accepted, counted.

    Read from the headers alone: parsing each whole digest (its HTML, text and
    MIME parts) again at every count was a tenth of this file's CPU.
    """
    headers = BytesHeaderParser(policy=policy.default)
    return Counter(headers.parsebytes(raw)["To"] for _, _, raw in list(sink.received))


def assert_own_digest(message, subscriber: Subscriber, delivery: Delivery):
    """The message is this subscriber's, and every link in it names this subscriber only."""
    assert message["To"] == subscriber.email
    assert message["Message-ID"] == delivery.message_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "placeholder.invalid" not in text + html  # no link left unpersonalized
    urls = LINK.findall(text) + LINK.findall(html) + LINK.findall(message["List-Unsubscribe"])
    seen = set()
    for url in urls:
        segments = urlparse(url).path.strip("/").split("/")
        kind = segments[1] if segments[:2] == ["unsubscribe", "one-click"] else segments[0]
        payload = read_token("test-secret-key", PURPOSES[kind], segments[-1])
        public_id = payload[0] if kind == "digest" else payload
        assert public_id == subscriber.public_id, url
        if kind == "digest":
            assert payload[1] == delivery.listing_date.isoformat()
        seen.add(kind)
    assert seen == set(PURPOSES)
    assert f"<{urls[-1]}>" in message["List-Unsubscribe"] and "/unsubscribe/one-click/" in urls[-1]


def test_a_normal_run_then_a_rerun_send_exactly_one_digest_each(sink, demo, config):
    both = add_subscriber("both@example.com", [RL, DP], timezone="Asia/Shanghai")
    zh = add_subscriber("zh@example.com", [RL, DP], language="en+zh", timezone="Europe/Berlin")
    twin = add_subscriber("Twin@Example.com", [RL, DP], timezone="Asia/Shanghai")
    policy_only = add_subscriber("dp@example.com", [DP])
    nothing = add_subscriber("nothing@example.com", [NO_MATCH])
    add_subscriber("pending@example.com", [RL], status=SubscriberStatus.UNCONFIRMED)
    add_subscriber("gone@example.com", [RL], status=SubscriberStatus.UNSUBSCRIBED)

    summary = dispatch_digests(demo)

    assert (summary.queued, summary.skipped, summary.held) == (4, 1, 0)
    assert recipients(sink) == Counter({s.email: 1 for s in (both, zh, twin, policy_only)})
    rows = {row.subscriber_id: row for row in deliveries()}
    assert set(rows) == {both.id, zh.id, twin.id, policy_only.id, nothing.id}
    assert rows[nothing.id].status is DeliveryStatus.SKIPPED
    messages = {message["To"]: message for message in sink.messages()}
    for subscriber in (both, zh, twin, policy_only):
        row = rows[subscriber.id]
        assert row.status is DeliveryStatus.SENT and row.sent_at is not None and row.attempts == 1
        assert_own_digest(messages[subscriber.email], subscriber, row)
    # The sample's split: 66 unique papers, 65 + 2, the shared one in full once.
    assert rows[both.id].paper_count == 66
    assert [(kw, len(ids)) for kw, ids in rows[both.id].sections] == [(RL, 65), (DP, 2)]
    subject = messages["both@example.com"]["Subject"]
    assert subject.startswith("arXiv digest · Fri 29 May 2026 · 66 papers")
    assert rows[policy_only.id].paper_count == 2
    # Bilingual digests carry the recorded Chinese translations; English ones none.
    assert CJK.search(messages["zh@example.com"].get_body(("plain",)).get_content())
    assert not CJK.search(messages["both@example.com"].get_body(("plain",)).get_content())
    # Identical digests share a render: only the links differ.
    own, twins = messages["both@example.com"], messages["Twin@Example.com"]
    strip = lambda m: LINK.sub("LINK", m.get_body(("html",)).get_content())  # noqa: E731
    assert strip(own) == strip(twins)

    again = dispatch_digests(demo)
    assert (again.queued, again.skipped, again.drain_jobs) == (0, 0, 0)
    assert sink.count() == 4


def test_two_workers_at_once_send_each_digest_once(sink, demo, app):
    subscribers = add_many(16)
    sink.hold = 0.01  # keep both workers busy at the same time
    start = threading.Barrier(2)
    results, errors = [], []

    def worker():
        with app.app_context():
            try:
                start.wait()
                results.append(dispatch_digests(demo, send_now=True))
            except Exception as error:  # reported below; a thread cannot fail the test itself
                errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})
    assert sum(r.sending.sent for r in results) == 16
    assert sum(r.queued for r in results) == 16  # each row made by exactly one of them
    assert {row.status for row in deliveries()} == {DeliveryStatus.SENT}
    assert len(deliveries()) == 16


def test_rq_workers_drain_the_day_and_extra_drain_jobs_find_nothing(redis_url, sink, demo, app):
    from redis import Redis
    from rq import Queue

    from worker.schedule import run_worker

    replace_settings(app, REDIS_URL=redis_url, DELIVERY_SEND_JOBS=2)
    subscribers = add_many(10)
    first = dispatch_digests(demo)
    second = dispatch_digests(demo)  # before any worker ran: two more drain jobs, no id
    queue = Queue("default", connection=Redis.from_url(redis_url))
    assert first.drain_jobs == second.drain_jobs == 2  # bounded by DELIVERY_SEND_JOBS
    assert len(queue.job_ids) == 4
    assert sink.count() == 0

    run_worker(app, burst=True)

    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})
    assert sink.connections == 1  # the first drain sent everything; the others found nothing
    assert dispatch_digests(demo).drain_jobs == 0


WORKER_SCRIPT = """
import json, sys
from newsletter import create_app
from worker.delivery.sending import drain_day
app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    drain_day(sys.argv[2])
"""


def start_worker(config: dict, listing_date: date, stderr) -> subprocess.Popen:
    arguments = [json.dumps(config), listing_date.isoformat()]
    return subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


def test_a_lease_that_lapsed_after_the_drains_last_claim_is_taken_not_left(
    config, redis_url, sink, demo, app
):
    """The race a loaded machine hits: a drain's claim found nothing while a dead
    worker's lease still ran, and the lease lapsed before the drain asked whom it
    waits for. The drain goes on to claim those rows instead of stopping."""
    replace_settings(app, REDIS_URL=redis_url)  # dispatch only makes the rows
    add_many(1)
    dispatch_digests(demo)
    (row,) = deliveries()
    row.status, row.claimed_by, row.attempts = DeliveryStatus.SENDING, "dead", 1
    row.lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session().commit()
    connection = LedgerConnection(db.engine(), retry_seconds=0)
    try:
        assert _wait_for_other_claims(connection, demo, "alive", max_attempts=3)
        assert not _wait_for_other_claims(connection, demo, "alive", max_attempts=1)
    finally:
        connection.close()


def test_a_killed_worker_repeats_at_most_the_message_in_flight_and_its_rows_go_after_the_lease(
    config, redis_url, sink, demo, app, tmp_path
):
    replace_settings(
        app, REDIS_URL=redis_url
    )  # dispatch only queues; the drain runs in a subprocess
    subscribers = add_many(8)
    dispatch_digests(demo)
    assert sink.count() == 0

    # The server kills the worker the moment it has recorded the third message,
    # before its 250: that message is in flight however slow the machine is.
    workers: list[subprocess.Popen] = []

    def kill_at_the_third(count: int) -> None:
        if count == 3:
            workers[0].send_signal(signal.SIGKILL)

    sink.on_received = kill_at_the_third
    lease = 3
    worker_config = {**config, "REDIS_URL": None, "DELIVERY_LEASE_SECONDS": lease}
    with (tmp_path / "worker.err").open("w") as stderr:
        workers.append(start_worker(worker_config, demo, stderr))
        try:
            workers[0].wait(60)
        finally:
            workers[0].kill()  # only if it neither died nor finished
    sink.on_received = None
    assert sink.count() == 3, (tmp_path / "worker.err").read_text()
    sent, sending, queued = DeliveryStatus.SENT, DeliveryStatus.SENDING, DeliveryStatus.QUEUED
    # Its batch of 4: two recorded sent, the one in flight and one untried still claimed.
    assert Counter(row.status for row in deliveries()) == {sent: 2, sending: 2, queued: 4}
    in_flight = sink.messages()[2]["To"]
    by_email = {s.id: s.email for s in subscribers}
    held = {row.id for row in deliveries() if row.status is sending}
    assert in_flight in {by_email[row.subscriber_id] for row in deliveries() if row.id in held}

    # Another worker at once: the rest goes, then the same drain waits for the
    # dead worker's lease to lapse and sends its rows too (the one in flight
    # again, with the same Message-ID).
    replace_settings(app, REDIS_URL=None, DELIVERY_LEASE_SECONDS=lease)
    held_emails = {by_email[r.subscriber_id] for r in deliveries() if r.id in held}
    lapses = {r.id: r.lease_expires_at for r in deliveries() if r.id in held}
    assert dispatch_digests(demo).drain_jobs == 1  # run in-process: no Redis
    # Taken once their lease lapsed, and then at once: the drain rechecks every 0.1 s here.
    sent_at = {r.id: r.sent_at for r in deliveries() if r.id in held}
    assert all(lapses[i] <= sent_at[i] < lapses[i] + timedelta(seconds=5) for i in held)
    assert sink.count() == 9
    assert {m["To"] for m in sink.messages()[-2:]} == held_emails  # after the queued ones
    counts = recipients(sink)
    assert set(counts) == {s.email for s in subscribers}
    assert [email for email, n in counts.items() if n > 1] == [in_flight]
    assert counts[in_flight] == 2
    ids_of_repeat = {m["Message-ID"] for m in sink.messages() if m["To"] == in_flight}
    assert len(ids_of_repeat) == 1
    assert {row.status for row in deliveries()} == {DeliveryStatus.SENT}
    assert dispatch_digests(demo).drain_jobs == 0
    assert sink.count() == 9


def test_two_draining_workers_with_their_own_connections_never_send_a_row_twice(
    redis_url, sink, demo, app
):
    replace_settings(app, REDIS_URL=redis_url)  # dispatch only queues; the drains run below
    subscribers = add_many(40)
    assert dispatch_digests(demo).claimable == 40
    replace_settings(app, REDIS_URL=None, SMTP_TIMEOUT=60)
    sink.hold = 0.005  # keep both workers busy at the same time
    # The first message waits (its 250 held back) until both drains hold rows, so the
    # one slower to start still gets its share however busy the machine is.
    both_hold_rows = threading.Event()

    def first_waits_for_both(count: int) -> None:
        if count == 1:
            both_hold_rows.wait(30)

    sink.on_received = first_waits_for_both
    start = threading.Barrier(2)
    results, errors = [], []

    def worker():
        with app.app_context():
            try:
                start.wait()
                results.append(drain_day(DEMO.isoformat()))
            except Exception as error:  # reported below; a thread cannot fail the test itself
                errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len({r.claimed_by for r in deliveries()} - {None}) < 2 and not errors:
        assert time.monotonic() < deadline, "the second drain claimed nothing"
        time.sleep(0.02)
    both_hold_rows.set()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})
    assert sum(r.sent for r in results) == 40
    assert min(r.sent for r in results) > 0  # both drained, batch by batch
    assert {row.status for row in deliveries()} == {DeliveryStatus.SENT}


def test_a_live_worker_slower_than_its_lease_keeps_its_claims(redis_url, sink, demo, app):
    replace_settings(app, REDIS_URL=redis_url, DELIVERY_BATCH_SIZE=12)
    subscribers = add_many(12)
    dispatch_digests(demo)  # rows made, drain jobs left on Redis
    # One batch takes ~4 s, two leases: only the heartbeat keeps it. (A 1 s lease gave
    # the heartbeat half a second of slack, less than a loaded machine can stall a thread.)
    replace_settings(app, REDIS_URL=None, DELIVERY_LEASE_SECONDS=2)
    sink.hold = 0.35
    results: dict[str, SendSummary] = {}
    errors = []

    def slow():
        with app.app_context():
            try:
                results["slow"] = drain_day(DEMO.isoformat())
            except Exception as error:  # reported below
                errors.append(error)

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 60
    while DeliveryStatus.QUEUED in {r.status for r in deliveries()}:  # one claim takes all 12
        assert thread.is_alive() and time.monotonic() < deadline, errors
        time.sleep(0.02)
    other = SendSummary()
    while thread.is_alive():  # another worker keeps looking for lapsed claims
        other.add(drain_day(DEMO.isoformat()))
        time.sleep(0.1)
    thread.join()

    assert errors == [] and results["slow"].sent == 12
    assert other.sent == 0  # it waited: the rows were held by a live worker
    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})


@pytest.mark.parametrize(
    ("where", "replies", "status", "error", "bounces"),
    [
        # A 4xx (greylisting) defers the row at once, no retry inline; the batch goes on.
        ("rcpt", ["451 4.7.1 Greylisted"], DeliveryStatus.QUEUED, "451 4.7.1 Greylisted", 0),
        ("data", ["452 4.3.1 Full"], DeliveryStatus.QUEUED, "452 4.3.1 Full", 0),
        # 5xx: failed with the reply text, counted as a hard bounce.
        ("rcpt", ["550 5.1.1 No user"], DeliveryStatus.FAILED, "550 5.1.1 No user", 1),
        ("data", ["554 5.7.1 Spam"], DeliveryStatus.FAILED, "554 5.7.1 Spam", 1),
    ],
)
def test_smtp_replies_decide_a_delivery(sink, demo, where, replies, status, error, bounces):
    target = add_subscriber("target@example.com", [DP])
    bystander = add_subscriber("bystander@example.com", [DP])
    (sink.rcpt_replies if where == "rcpt" else sink.data_replies)[target.email].extend(replies)

    summary = dispatch_digests(demo)

    row = next(r for r in deliveries() if r.subscriber_id == target.id)
    assert (row.status, row.error, row.attempts) == (status, error, 1)
    assert row.claimed_by is None if status is DeliveryStatus.QUEUED else row.claimed_by
    assert db.session().get(Subscriber, target.id).bounce_count == bounces
    assert db.session().get(Subscriber, target.id).status is SubscriberStatus.CONFIRMED
    assert recipients(sink) == Counter({bystander.email: 1})
    assert summary.drain_jobs == 1 and sink.rcpt_attempts[target.email] == 1

    # The next dispatch after the backoff retries only what was left queued.
    backoff_passes()
    dispatch_digests(demo)
    final = next(r for r in deliveries() if r.subscriber_id == target.id)
    expected_after = DeliveryStatus.SENT if status is DeliveryStatus.QUEUED else status
    assert final.status is expected_after
    assert recipients(sink)[bystander.email] == 1
    assert recipients(sink)[target.email] == (1 if expected_after is DeliveryStatus.SENT else 0)


def test_a_greylisting_storm_defers_those_rows_and_they_go_later_exactly_once(sink, demo, app):
    replace_settings(app, DELIVERY_BATCH_SIZE=100)
    subscribers = add_many(20)
    greylisted = {s.email for s in subscribers[::3]}  # 7 of 20
    for email in greylisted:
        sink.rcpt_replies[email].append("451 4.7.1 Greylisted, come back later")

    started = utcnow()
    first = dispatch_digests(demo, send_now=True)
    assert (first.sending.sent, first.sending.deferred) == (13, 7)
    assert {sink.rcpt_attempts[email] for email in greylisted} == {1}  # no inline retry
    assert sink.connections == 1  # one connection; the batch went on past each 4xx
    held = [r for r in deliveries() if r.status is DeliveryStatus.QUEUED]
    backoff = timedelta(seconds=3600)  # DELIVERY_RETRY_SECONDS after a first attempt
    assert len(held) == 7
    assert all(started + backoff <= r.next_attempt_at <= utcnow() + backoff for r in held)

    # Before the backoff: nothing to claim. After it: sent, once.
    assert dispatch_digests(demo).drain_jobs == 0
    backoff_passes()
    assert dispatch_digests(demo).sending.sent == 0  # enqueue ran it in-process
    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})
    assert {r.status for r in deliveries()} == {DeliveryStatus.SENT}
    assert {r.attempts for r in deliveries() if r.subscriber.email in greylisted} == {2}
    assert dispatch_digests(demo).drain_jobs == 0


def test_hard_bounces_past_the_limit_suppress_the_subscriber(config, sink, demo, app, caplog):
    replace_settings(app, BOUNCE_LIMIT=2)
    target = add_subscriber("bouncy@example.com", [DP])
    target.bounce_count = 1  # one earlier hard bounce
    db.session().commit()
    sink.rcpt_replies[target.email].append("550 5.1.1 Mailbox does not exist")

    with caplog.at_level(logging.WARNING, logger="worker.delivery.batch"):
        dispatch_digests(demo)

    subscriber = db.session().get(Subscriber, target.id)
    db.session().refresh(subscriber)
    assert (subscriber.bounce_count, subscriber.status) == (2, SubscriberStatus.BLOCKLISTED)
    # Each line about the row carries its ids (fields of LOG_FORMAT=json).
    row = deliveries()[0]
    about_row = [r for r in caplog.records if r.name == "worker.delivery.batch"]
    assert [(r.delivery_id, r.subscriber_id) for r in about_row] == [(row.id, target.id)] * 2
    # Suppressed: no row for the next listing date.
    next_day = date(2026, 6, 1)
    now = datetime.now(UTC)
    db.session().add(ListingDay(listing_date=next_day, completed_at=now, translated_at=now))
    db.session().commit()
    assert dispatch_digests(next_day).queued == 0
    assert [r.listing_date for r in deliveries()] == [DEMO]


def test_temporary_failures_give_up_after_max_attempts(sink, demo, app):
    replace_settings(app, DELIVERY_MAX_ATTEMPTS=2)
    target = add_subscriber("grey@example.com", [DP])
    sink.rcpt_replies[target.email].extend(["451 4.3.0 Try later"] * 100)
    dispatch_digests(demo)
    assert deliveries()[0].status is DeliveryStatus.QUEUED
    backoff_passes()
    dispatch_digests(demo)
    row = deliveries()[0]
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 2)
    assert row.error == "451 4.3.0 Try later"
    assert db.session().get(Subscriber, target.id).bounce_count == 0  # not a hard bounce
    assert sink.count() == 0


def test_an_unreachable_server_stops_the_drain_and_leaves_rows_queued(config, demo, app):
    from conftest import free_port

    port = free_port()
    replace_settings(
        app, SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none", SMTP_RETRY_DELAY=0.01
    )
    subscribers = add_many(3)

    summary = dispatch_digests(demo, send_now=True)

    assert summary.sending.stopped and "connection" in summary.sending.stopped
    assert summary.sending.deferred == 1 and summary.sending.sent == 0
    # The one tried keeps its attempt; the untried claims are given back as they were.
    assert sorted((r.status.value, r.attempts) for r in deliveries()) == [
        ("queued", 0),
        ("queued", 0),
        ("queued", 1),
    ]

    handler = SmtpSink()
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        dispatch_digests(demo)
    finally:
        controller.stop()
    assert recipients(handler) == Counter({s.email: 1 for s in subscribers})


def test_a_subscriber_who_left_after_dispatch_is_skipped(config, redis_url, sink, demo, app):
    replace_settings(app, REDIS_URL=redis_url)
    stays = add_subscriber("stays@example.com", [DP])
    leaves = add_subscriber("leaves@example.com", [DP])
    dispatch_digests(demo)  # rows made, chunk queued on Redis
    leaves.status = SubscriberStatus.UNSUBSCRIBED
    db.session().commit()

    summary = drain_day(demo.isoformat())

    assert (summary.sent, summary.skipped) == (1, 1)
    assert recipients(sink) == Counter({stays.email: 1})
    statuses = {row.subscriber_id: (row.status, row.error) for row in deliveries()}
    assert statuses[leaves.id] == (DeliveryStatus.SKIPPED, "subscriber unsubscribed")
    # A drain run again (an RQ retry, a duplicate job) finds nothing.
    assert drain_day(demo.isoformat()) == SendSummary()
    assert sink.count() == 1


@pytest.mark.parametrize("send_empty", [False, True])
def test_no_matching_paper_means_no_email_unless_configured(sink, demo, app, send_empty):
    replace_settings(app, DIGEST_SEND_EMPTY=send_empty)
    subscriber = add_subscriber("empty@example.com", [NO_MATCH])
    dispatch_digests(demo)
    row = deliveries()[0]
    if send_empty:
        assert row.status is DeliveryStatus.SENT
        (message,) = sink.messages()
        assert_own_digest(message, subscriber, row)
    else:
        assert (row.status, row.error) == (DeliveryStatus.SKIPPED, "no matching papers")
        assert sink.count() == 0


def test_held_subscribers_wait_for_their_hour_and_the_translation(sink, demo, app):
    announced = datetime(2026, 5, 29, 0, 0, tzinfo=UTC)  # Thu 28 May 20:00 EDT
    day = db.session().get(ListingDay, DEMO)
    day.completed_at = announced + timedelta(hours=4)  # ingested at midnight ET
    day.translated_at = None
    db.session().commit()
    replace_settings(app, TRANSLATION_DEADLINE_MINUTES=60, TRANSLATION_BACKEND="recorded")
    early_bird = add_subscriber("soon@example.com", [DP])
    morning = add_subscriber(
        "morning@example.com", [DP], timezone="America/New_York", delivery_hour=7
    )
    bilingual = add_subscriber("zh@example.com", [DP], language="en+zh")
    completed = day.completed_at

    first = dispatch_digests(DEMO, now=completed + timedelta(minutes=1))
    assert (first.queued, first.held) == (1, 2)
    assert recipients(sink) == Counter({early_bird.email: 1})

    # 07:00 in New York; past the translation deadline the bilingual digest goes too.
    second = dispatch_digests(DEMO, now=datetime(2026, 5, 29, 11, 0, tzinfo=UTC))
    assert (second.queued, second.held) == (2, 0)
    assert recipients(sink) == Counter({s.email: 1 for s in (early_bird, morning, bilingual)})


@pytest.mark.parametrize(("backend", "held"), [("recorded", 1), ("none", 0)])
def test_without_a_translation_backend_bilingual_digests_do_not_wait(
    sink, demo, app, backend, held
):
    day = db.session().get(ListingDay, DEMO)
    day.translated_at = None
    db.session().commit()
    replace_settings(app, TRANSLATION_BACKEND=backend)
    add_subscriber("zh@example.com", [DP], language="en+zh")
    summary = dispatch_digests(DEMO, now=day.completed_at + timedelta(minutes=1))
    assert (summary.held, sink.count()) == (held, 1 - held)


@pytest.mark.parametrize(
    ("listing_date", "timezone", "hour", "expected_utc"),
    [
        (DEMO, "UTC", None, datetime(2026, 5, 29, 0, 0)),  # as soon as announced
        (DEMO, "America/New_York", 7, datetime(2026, 5, 29, 11, 0)),
        (DEMO, "America/New_York", 20, datetime(2026, 5, 29, 0, 0)),  # the announcement itself
        (DEMO, "America/New_York", 19, datetime(2026, 5, 29, 23, 0)),
        (DEMO, "Asia/Shanghai", 8, datetime(2026, 5, 29, 0, 0)),  # 08:00 CST is 20:00 EDT
        (DEMO, "Asia/Shanghai", 7, datetime(2026, 5, 29, 23, 0)),  # the next morning
        (DEMO, "Europe/Berlin", 7, datetime(2026, 5, 29, 5, 0)),
        (DEMO, "No/Such_Zone", 9, datetime(2026, 5, 29, 9, 0)),  # unknown: UTC
        # Winter (EST): announced 01:00 UTC = 09:00 CST, so 08:00 CST is the next day.
        (date(2026, 1, 16), "Asia/Shanghai", 8, datetime(2026, 1, 17, 0, 0)),
        (date(2026, 1, 16), "America/Los_Angeles", 0, datetime(2026, 1, 16, 8, 0)),
    ],
)
def test_release_instant_is_the_first_delivery_hour_after_the_announcement(
    listing_date, timezone, hour, expected_utc
):
    assert release_instant(listing_date, timezone, hour) == expected_utc.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "translated", "minutes_after_completion", "due"),
    [
        ("en", False, 0, True),
        ("en+zh", True, 0, True),
        ("en+zh", False, 59, False),
        ("en+zh", False, 60, True),  # the deadline: never held indefinitely
    ],
)
def test_bilingual_digests_wait_for_translation_until_the_deadline(
    language, translated, minutes_after_completion, due
):
    completed = datetime(2026, 5, 29, 5, 0, tzinfo=UTC)
    translated_at = completed if translated else None
    day = ListingDay(listing_date=DEMO, completed_at=completed, translated_at=translated_at)
    now = completed + timedelta(minutes=minutes_after_completion)
    bilingual = language == "en+zh"
    assert (
        is_due(
            day, now, timedelta(minutes=60), timezone="UTC", delivery_hour=None, bilingual=bilingual
        )
        is due
    )


def test_cli_send_and_preview(sink, demo, app):
    add_subscriber("reader@example.com", [RL, DP], language="en+zh")
    add_subscriber("nothing@example.com", [NO_MATCH])
    runner = app.test_cli_runner()

    sent = runner.invoke(cli_main, ["digest", "send", "--date", "2026-05-29"])
    assert sent.exit_code == 0, sent.output
    assert "2026-05-29: sent 1, skipped 1, failed 0" in sent.output
    again = runner.invoke(cli_main, ["digest", "send"])  # default: the latest complete date
    assert again.exit_code == 0 and "2026-05-29: sent 0, skipped 0, failed 0" in again.output
    assert sink.count() == 1

    preview = runner.invoke(cli_main, ["digest", "preview", "READER@example.com"])
    assert preview.exit_code == 0, preview.output
    # An English + 简体中文 reader's digest: its chrome is 简体中文.
    assert preview.output.startswith("Subject: arXiv 论文摘要 · 2026年5月29日 周五 · 66 篇论文")
    html = runner.invoke(
        cli_main, ["digest", "preview", "reader@example.com", "--html", "--date", "2026-05-29"]
    )
    assert html.exit_code == 0 and "<html" in html.output.lower()
    assert sink.count() == 1  # previews send nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["digest", "preview", "nobody@example.com"], "no subscriber with the address"),
        (["digest", "preview", "reader@example.com", "--date", "2026-06-01"], "not completely"),
        (["digest", "preview", "reader@example.com", "--date", "yesterday"], "must be a date"),
        (["digest", "send", "--date", "2026-06-01"], "not completely ingested"),
        (["digest", "send", "--date", "2026-13-01"], "must be a date"),
    ],
)
def test_cli_refuses_unknown_addresses_and_dates(demo, app, args, message):
    add_subscriber("reader@example.com", [DP])
    result = app.test_cli_runner().invoke(cli_main, args)
    assert result.exit_code != 0
    assert message in result.output
    # A ClickException (exit code 1, "Error: ..."), not an exception escaping the command.
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_cli_send_before_any_ingest_says_so(app):
    result = app.test_cli_runner().invoke(cli_main, ["digest", "send"])
    assert result.exit_code != 0 and "no complete listing date yet" in result.output


# --- round trips and database outages ---


def test_each_message_costs_one_database_round_trip(redis_url, sink, demo, app):
    from sqlalchemy import event

    replace_settings(app, REDIS_URL=redis_url, DELIVERY_BATCH_SIZE=5)
    add_many(20)
    dispatch_digests(demo)  # rows made, drain jobs left on Redis
    replace_settings(app, REDIS_URL=None)
    statements: list[str] = []

    def count(_connection, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    event.listen(db.engine(), "before_cursor_execute", count)
    try:
        summary = drain_day(DEMO.isoformat())
    finally:
        event.remove(db.engine(), "before_cursor_execute", count)

    assert summary.sent == 20 and sink.count() == 20
    marks = [s for s in statements if s.startswith("UPDATE deliveries") and "sent_at" in s]
    assert len(marks) == 20
    # Per batch of 5: one claim, one read of its subscribers; then one empty claim.
    claims = [s for s in statements if s.startswith("WITH lapsed")]
    assert len(claims) == 5
    # Besides those: a handful per drain (the day's translation state and
    # translations, the rows other workers hold), none per message.
    assert len(statements) - len(marks) - 2 * len(claims) <= 5, statements


def drain_lines(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "worker.delivery.sending" and r.getMessage().startswith("drain of")
    ]


def test_a_drain_logs_its_render_mime_and_gc_cpu_per_digest(sink, demo, app, caplog):
    # Two batches of 4 (the sink fixture's size): the GC is settled after each.
    subscribers = add_many(6)
    with caplog.at_level(logging.INFO, logger="worker.delivery.sending"):
        summary = dispatch_digests(demo, send_now=True).sending

    assert summary.sent == len(subscribers) == sink.count() == summary.digests
    [line] = drain_lines(caplog)
    # The words before the figures stay as they were; benchmarks/scale.py reads the figures.
    assert line.startswith(f"drain of {DEMO}: 6 sent, 0 skipped, 0 failed, 0 deferred; render ")
    figures = CPU_LINE.search(line)
    assert figures is not None and int(figures["digests"]) == 6
    assert summary.render_cpu > 0 and summary.mime_cpu > 0 and summary.gc_cpu > 0
    for name, seconds in (("render", summary.render_cpu), ("mime", summary.mime_cpu)):
        assert float(figures[name]) > 0
        assert float(figures[name]) == pytest.approx(seconds * 1000 / 6, abs=0.0006)
    assert float(figures["gc"]) == pytest.approx(summary.gc_cpu * 1000 / 6, abs=0.0006)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="worker.delivery.sending"):
        assert drain_day(DEMO.isoformat()).digests == 0
    assert drain_lines(caplog) == [f"drain of {DEMO}: 0 sent, 0 skipped, 0 failed, 0 deferred"]


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="needs a PostgreSQL server to cut off (SQLite has no connection)",
)
def test_a_database_outage_while_marking_rows_sent_loses_nothing_and_sends_nothing_twice(
    config, database_url, redis_url, sink, demo, app, caplog
):
    from sqlalchemy.engine import make_url

    from newsletter import create_app

    replace_settings(app, REDIS_URL=redis_url, DELIVERY_BATCH_SIZE=4)
    subscribers = add_many(12)
    dispatch_digests(demo)  # rows made, drain jobs left on Redis
    url = make_url(database_url)
    proxy = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    worker = create_app(
        {
            **config,
            "REDIS_URL": None,
            "DATABASE_URL": through_proxy.render_as_string(hide_password=False),
            "DELIVERY_BATCH_SIZE": 4,
        }
    )
    # The database goes away for 3 s while the server holds the sixth message:
    # recording it sent (and the next claim) meet the outage.
    sink.on_received = lambda count: proxy.cut(3.0) if count == 6 else None
    try:
        with worker.app_context():
            summary = drain_day(DEMO.isoformat())
    finally:
        proxy.close()
        worker.extensions["db_engine"].dispose()

    assert proxy.refused > 0  # the outage happened
    assert "database error, retrying" in caplog.text
    assert summary.sent == 12 and summary.stopped is None
    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})
    assert {row.status for row in deliveries()} == {DeliveryStatus.SENT}
    assert {row.attempts for row in deliveries()} == {1}


def test_a_batch_is_rendered_whole_before_its_messages_are_built(sink, demo, app, monkeypatch):
    # Renders back to back keep the day's pieces in the CPU's caches (worker/delivery/batch.py).
    steps: list[str] = []
    render, mime = Sender._render, Sender._mime
    monkeypatch.setattr(Sender, "_render", lambda s, c: steps.append("render") or render(s, c))
    monkeypatch.setattr(Sender, "_mime", lambda s, *a: steps.append("mime") or mime(s, *a))
    subscribers = add_many(6)

    summary = dispatch_digests(demo, send_now=True).sending

    # The sink fixture's batches are of 4: four renders, four builds, then the last two.
    assert steps == ["render"] * 4 + ["mime"] * 4 + ["render"] * 2 + ["mime"] * 2
    assert summary.sent == sink.count() == len(subscribers)
    assert recipients(sink) == Counter({s.email: 1 for s in subscribers})


def test_a_digest_that_cannot_be_rendered_fails_alone(redis_url, sink, demo, app):
    replace_settings(app, REDIS_URL=redis_url)
    broken, fine = (
        add_subscriber("broken@example.com", [DP]),
        add_subscriber("ok@example.com", [DP]),
    )
    dispatch_digests(demo)  # rows made, drain jobs left on Redis
    replace_settings(app, REDIS_URL=None)
    row = next(r for r in deliveries() if r.subscriber_id == broken.id)
    row.sections = [["a keyword without its papers"]]  # not what dispatch writes
    db.session().commit()

    summary = drain_day(DEMO.isoformat())

    assert (summary.sent, summary.failed) == (1, 1)
    assert recipients(sink) == Counter({fine.email: 1})
    failed = next(r for r in deliveries() if r.subscriber_id == broken.id)
    assert failed.status is DeliveryStatus.FAILED and failed.error.startswith("render failed")


def test_dispatch_reads_subscribers_in_pages_and_inserts_each_page_with_one_statement(
    redis_url, sink, demo, app, monkeypatch
):
    from sqlalchemy import event

    from worker.delivery import dispatch as delivery

    monkeypatch.setattr(delivery, "PAGE_SIZE", 3)
    replace_settings(app, REDIS_URL=redis_url)  # rows only; drain jobs are left on Redis
    wanted = {}
    for n in range(10):
        keywords = [[RL, DP], [DP], [NO_MATCH]][n % 3]
        subscriber = add_subscriber(f"p{n}@example.com", keywords)
        wanted[subscriber.id] = keywords
        # Subscribers without a digest between them: pages skip them, keywords stay apart.
        add_subscriber(f"u{n}@example.com", [RL], status=SubscriberStatus.UNCONFIRMED)
    inserts: list[tuple[bool, int]] = []

    def record(_connection, _cursor, statement, parameters, _context, executemany):
        if statement.startswith("INSERT INTO deliveries"):
            inserts.append((executemany, len(parameters) if executemany else 1))

    event.listen(db.engine(), "before_cursor_execute", record)
    try:
        summary = dispatch_digests(demo)
    finally:
        event.remove(db.engine(), "before_cursor_execute", record)

    assert (summary.queued, summary.skipped) == (7, 3)
    rows = {row.subscriber_id: row for row in deliveries()}
    assert set(rows) == set(wanted)
    for subscriber_id, keywords in wanted.items():
        # Each row got its own subscriber's keyword lines, in their order.
        assert [keyword for keyword, _ids in rows[subscriber_id].sections] == [
            k for k in keywords if k != NO_MATCH
        ]
    # Four pages of at most 3 confirmed subscribers (the unconfirmed are never read):
    # per page one INSERT for the rows to send and one for the skipped ones, at most.
    assert sum(count for _many, count in inserts) == 10
    assert len(inserts) <= 8
    assert all(count <= 3 for _many, count in inserts)
