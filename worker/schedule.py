"""The periodic poll and the processes that run it.

`poll` is the one scheduled job (every ~15 minutes): ingest the due listing
date if it is not complete, then queue its translation and its digests'
dispatch, which queues drain jobs while deliveries are claimable (also those
of a dead worker, once their lease lapsed). Each step is idempotent, so a
poll that overlaps another, or repeats, is harmless.
`run_scheduler` runs RQ's cron as the single scheduler of a deployment;
`run_worker` runs an RQ worker whose jobs each get a fresh app context.
"""

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import cast

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.exceptions import StopRequested
from sqlalchemy import select

from newsletter import db
from newsletter.config import settings
from newsletter.models import ListingDay
from worker import calendar, jobs
from worker.arxiv.ingest import ingest_due
from worker.queue import QUEUE_NAME, enqueue

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 15 * 60
SCHEDULER_LOCK = "newsletter:scheduler-lock"
SCHEDULER_LOCK_SECONDS = 180


def poll(now: datetime | None = None) -> None:
    """Ingest what is due, then queue translation and digests of the due date.

    The previous listing date is queued again too, so its deliveries left
    queued by a temporary SMTP failure are retried after the day moves on.
    """
    now = now or db.utcnow()
    log.info("poll: %s", ingest_due(settings(), now).line())
    due = calendar.due_listing_date(now)
    previous = calendar.previous_listing_date(due)
    # Whoever confirmed after the due date took over starts with the due date.
    for listing_date, confirmed_before in (
        (previous, calendar.feed_rebuild_instant(due)),
        (due, None),
    ):
        day = db.session().get(ListingDay, listing_date)
        if day is None or day.completed_at is None:
            log.info("listing date %s is not complete yet; its digests wait", listing_date)
            continue
        queue_day(listing_date, confirmed_before)
    if settings().BOUNCE_IMAP_URL:
        # A fixed id: a slow mailbox read is not queued again beside itself.
        enqueue(jobs.poll_bounces, job_id="poll-bounces", job_timeout=600)


def queue_day(listing_date: date, confirmed_before: datetime | None = None) -> None:
    """Queue a complete day's translation (if needed) and its digest dispatch."""
    iso = listing_date.isoformat()
    day = db.session().get(ListingDay, listing_date)
    # A day never ingested (`digest send --queue --date` of one) has nothing to
    # translate; its dispatch finds nothing to send, as a direct send would.
    if day is not None and day.translated_at is None:
        # Even with no backend the job runs: it marks the day translated, so
        # bilingual digests (if any) need not wait for the deadline.
        deadline = settings().TRANSLATION_DEADLINE_MINUTES * 60
        enqueue(
            jobs.translate_listing_date, iso, job_id=f"translate-{iso}", job_timeout=deadline + 600
        )
    # No job id: a dispatch is idempotent, and one whose worker died must not
    # block the next poll's (RQ would list it as started for its whole timeout).
    enqueue(
        jobs.dispatch_digests_job,
        iso,
        confirmed_before.isoformat() if confirmed_before else None,
    )


def latest_complete_day() -> date | None:
    """The most recent listing date that is completely ingested, if any."""
    return db.session().scalar(
        select(ListingDay.listing_date)
        .where(ListingDay.completed_at.is_not(None))
        .order_by(ListingDay.listing_date.desc())
        .limit(1)
    )


class AppWorker(SimpleWorker):
    """An RQ worker that runs every job inside a fresh app context.

    SimpleWorker runs jobs in this process (no fork), so the database engine
    and its pool are never shared across a fork.
    """

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def perform_job(self, job, queue):
        with self.app.app_context():
            return super().perform_job(job, queue)


def run_worker(app: Flask, burst: bool = False) -> None:
    """Run an RQ worker until it is told to stop; when Redis goes away, wait and start again.

    RQ rides out a lost connection while it waits for a job, but quits (or
    raises) when the loss comes at another moment: after a job, in its
    maintenance. Jobs left half-done are the ledger's to recover (leases), and
    the next poll queues the day again, so starting afresh loses nothing.
    """
    import signal

    from redis.exceptions import RedisError

    def without_traceback(record: logging.LogRecord) -> bool:
        # RQ logs a lost connection with a traceback of retries; its cause is the news.
        if record.exc_info and isinstance(record.exc_info[1], RedisError):
            record.msg, record.args = f"{record.getMessage()} {record.exc_info[1]}", None
            record.exc_info = record.exc_text = None
        return True

    logging.getLogger("rq.worker").addFilter(without_traceback)
    connection = Redis.from_url(redis_url(app))
    while True:
        worker = AppWorker(
            [Queue(QUEUE_NAME, connection=connection)], connection=connection, app=app
        )
        try:
            worker.work(burst=burst, with_scheduler=False)
        except RedisError as error:
            log.error("worker: lost Redis (REDIS_URL): %s", error)
        if worker.pubsub_thread is not None:
            # RQ's teardown stops it only when Redis answers; it would retry forever.
            worker.pubsub_thread.stop()
        # RQ notes a SIGINT/SIGTERM here; its loop also quits on an error it logged.
        if burst or getattr(worker, "_shutdown_requested_date", None) is not None:
            return
        # No job runs while waiting, so a signal may end the process at once
        # (RQ's own handlers would need Redis to answer).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        wait = 1.0
        while True:
            try:
                connection.ping()
                break
            except RedisError as error:
                log.error(
                    "worker: Redis (REDIS_URL) unreachable, retrying in %.0f s: %s", wait, error
                )
            threading.Event().wait(wait)
            wait = min(wait * 2, 30.0)
        log.info("worker: Redis (REDIS_URL) answers; starting again")


class SingleCronScheduler(CronScheduler):
    """RQ's cron, refusing to run beside another instance (a Redis lease)."""

    lost_lock = False  # set when another scheduler took the lease and this one stopped

    def heartbeat(self) -> None:
        super().heartbeat()
        # redis-py types a sync client's replies as `Awaitable | Any`.
        holder = cast(bytes | None, self.connection.get(SCHEDULER_LOCK))
        if holder is not None and holder.decode() != self.name:
            log.error("another scheduler (%s) holds the lock; stopping", holder.decode())
            self.lost_lock = True
            # RQ's own way out of its loop (what its SIGTERM handler raises):
            # start() logs it, registers this scheduler's death and returns.
            raise StopRequested
        self.connection.set(SCHEDULER_LOCK, self.name, ex=SCHEDULER_LOCK_SECONDS)

    def register_death(self, pipeline=None) -> None:
        super().register_death(pipeline)
        if self.connection.get(SCHEDULER_LOCK) == self.name.encode():
            self.connection.delete(SCHEDULER_LOCK)


def redis_url(app: Flask) -> str:
    """REDIS_URL, which the scheduler and the worker need (the CLI says so before)."""
    url = settings(app).REDIS_URL
    if url is None:
        raise RuntimeError("REDIS_URL is not set: the scheduler and workers need Redis")
    return url


def run_scheduler(app: Flask) -> None:
    """Run the cron loop, or exit at once if another scheduler is alive."""
    connection = Redis.from_url(redis_url(app))
    scheduler = SingleCronScheduler(connection=connection)
    if not connection.set(SCHEDULER_LOCK, scheduler.name, nx=True, ex=SCHEDULER_LOCK_SECONDS):
        holder = cast(bytes, connection.get(SCHEDULER_LOCK))
        raise RuntimeError(
            f"another scheduler is running ({holder.decode()}); a deployment runs exactly one"
        )
    scheduler.register(poll, QUEUE_NAME, interval=POLL_INTERVAL_SECONDS, job_timeout=3600)
    scheduler.start()


def run_every(app: Flask, stop: threading.Event, step: Callable[[], None], seconds: float) -> None:
    """Run `step` in a fresh app context every `seconds` until `stop` is set.

    The embedded scheduler of `newsletter dev`, which has no Redis and no cron.
    """
    while not stop.is_set():
        with app.app_context():
            try:
                step()
            except Exception:
                log.exception("scheduled step %s failed; trying again later", step.__name__)
        stop.wait(seconds)
