"""Hand a job to RQ, or run it right away when no Redis is configured.

Callers enqueue only after the commit that made the rows the job reads.
"""

import logging
from collections.abc import Callable

from flask import current_app
from redis import Redis
from rq import Queue, Retry

log = logging.getLogger(__name__)

QUEUE_NAME = "default"


def redis_connection() -> Redis | None:
    """The app's Redis connection, or None in the embedded (no Redis) mode."""
    url = current_app.config["REDIS_URL"]
    if not url:
        return None
    if "redis" not in current_app.extensions:
        current_app.extensions["redis"] = Redis.from_url(url)
    return current_app.extensions["redis"]


def enqueue(
    func: Callable,
    *args,
    job_id: str | None = None,
    retry: Retry | None = None,
    job_timeout: int = 1800,
) -> None:
    """Queue `func(*args)` on RQ; without Redis, run it now in a fresh app context.

    A deterministic `job_id` makes a double enqueue harmless while the first
    is still queued or running.
    """
    connection = redis_connection()
    if connection is None:
        app = current_app._get_current_object()
        with app.app_context():
            try:
                func(*args)
            except Exception:
                # As a failed RQ job would: logged, never raised into a request.
                log.exception("job %s%r failed", func.__name__, args)
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
    queue.enqueue(func, *args, job_id=job_id, retry=retry, job_timeout=job_timeout)
