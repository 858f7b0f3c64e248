"""Hand a job to RQ, or run it right away when no Redis is configured.

Callers enqueue only after the commit that made the rows the job reads. The web
names its jobs by dotted path ("worker.jobs.send_confirmation"), as RQ allows, so
that the web process never imports the job's code (sending, DKIM, the arXiv
client): the worker process imports it when it runs the job, and so does the
in-process mode below.
"""

import logging
from collections.abc import Callable

from flask import current_app
from redis import Redis
from rq import Queue, Retry
from rq.utils import import_attribute

from newsletter.config import settings

log = logging.getLogger(__name__)

QUEUE_NAME = "default"


def redis_connection(url: str | None) -> Redis | None:
    """The app's connection to REDIS_URL `url`, or None in the embedded (no Redis) mode."""
    if not url:
        return None
    if "redis" not in current_app.extensions:
        current_app.extensions["redis"] = Redis.from_url(url)
    return current_app.extensions["redis"]


def enqueue(
    func: Callable | str,
    *args,
    job_id: str | None = None,
    retry: Retry | None = None,
    job_timeout: int = 1800,
    failure_ttl: int | None = None,
) -> None:
    """Queue `func(*args)` on RQ; without Redis, run it now in a fresh app context.

    `func` is a function or its dotted name. A deterministic `job_id` makes a
    double enqueue harmless while the first is still queued or running.
    `failure_ttl` (seconds) bounds how long RQ keeps a failed job, and so its
    arguments, in Redis: RQ's default is a year.
    Called at the edge (views, jobs, the scheduler, the CLI) and by dispatch:
    the one place below the edge that reads the app's settings, for REDIS_URL,
    so that those callers need not carry it.
    """
    connection = redis_connection(settings().REDIS_URL)
    if connection is None:
        # The app behind the proxy, for the job's own app context; current_app is typed as Flask.
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        with app.app_context():
            try:
                # What an RQ worker does with a name: import it when the job runs.
                job = import_attribute(func) if isinstance(func, str) else func
                job(*args)
            except Exception:
                # As a failed RQ job would: logged, never raised into a request.
                log.exception("job %s%r failed", job_name(func), args)
        return
    queue = Queue(QUEUE_NAME, connection=connection)
    if job_id is not None:
        existing = queue.fetch_job(job_id)
        if existing is not None and existing.get_status(refresh=True) in (
            "queued",
            "started",
            "deferred",
            "scheduled",
        ):
            log.info("job %s already %s; not queued again", job_id, existing.get_status())
            return
    # By name either way: the same dotted path RQ would store for the function.
    queue.enqueue(
        job_name(func),
        *args,
        job_id=job_id,
        retry=retry,
        job_timeout=job_timeout,
        failure_ttl=failure_ttl,
    )


def job_name(func: Callable | str) -> str:
    """The dotted name RQ stores for `func`."""
    if isinstance(func, str):
        return func
    return f"{func.__module__}.{func.__qualname__}"
