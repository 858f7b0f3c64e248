"""newsletter/logging_setup.py: LOG_FORMAT=json on the real app, a real RQ worker on the
private Redis, and jobs from worker/jobs.py; the default stays human-readable."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

import pytest
from conftest import empty_tables
from redis import Redis
from rq import Queue

from newsletter import create_app
from newsletter.logging_setup import HANDLER_NAME, log_context
from worker import jobs
from worker.queue import QUEUE_NAME
from worker.schedule import AppWorker

# Not ingested in these tests: the dispatch logs that it waits for the day.
DAY = date(2024, 11, 28)


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """A root logger with no handler, as in a fresh gunicorn or worker process.

    Made inside the test body: pytest adds its capture handlers to the root
    logger at the start of each phase. Its handlers and level are put back after.
    """
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    root.handlers = []
    try:
        yield root
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers = handlers
        root.setLevel(level)  # also clears the loggers' cached levels


def json_app(config, database_url):
    empty_tables(database_url)
    config["LOG_FORMAT"] = "json"
    return create_app(config)


def lines(capsys) -> list[dict]:
    """Every line on stderr, each parsed as one JSON object (any other line fails)."""
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_a_job_logs_one_json_object_per_line_with_its_listing_date(config, database_url, capsys):
    with bare_root() as root:
        app = json_app(config, database_url)
        with app.app_context():
            jobs.dispatch_digests_job(DAY.isoformat())
        app.extensions["db_engine"].dispose()
        installed = [handler.get_name() for handler in root.handlers]

    assert installed == [HANDLER_NAME]
    records = lines(capsys)
    waiting = [r for r in records if r["logger"] == "worker.delivery.dispatch"]
    assert waiting, records
    line = waiting[0]
    assert line["level"] == "INFO"
    assert line["message"] == "listing date 2024-11-28 is not complete; no digests yet"
    assert line["listing_date"] == "2024-11-28"
    assert "job_id" not in line  # run in-process: no RQ job
    assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0


def test_an_rq_job_adds_its_job_id(config, database_url, redis_url, capsys):
    config["REDIS_URL"] = redis_url
    with bare_root():
        app = json_app(config, database_url)
        connection = Redis.from_url(redis_url)
        queue = Queue(QUEUE_NAME, connection=connection)
        queue.enqueue(jobs.dispatch_digests_job, DAY.isoformat(), job_id="dispatch-test-job")
        worker = AppWorker([queue], connection=connection, app=app)
        worker.work(burst=True, with_scheduler=False)
        connection.close()
        app.extensions["db_engine"].dispose()

    records = lines(capsys)  # RQ's own lines are JSON too
    ours = [r for r in records if r["logger"] == "worker.delivery.dispatch"]
    assert [(r["job_id"], r["listing_date"]) for r in ours] == [("dispatch-test-job", "2024-11-28")]
    rq_lines = [r for r in records if r["logger"] == "rq.worker"]
    assert rq_lines
    # Outside the job the context is gone.
    assert all("job_id" not in r for r in rq_lines)


def test_extra_fields_and_tracebacks_stay_on_one_line(config, database_url, capsys):
    log = logging.getLogger("tests.logging")
    with bare_root():
        app = json_app(config, database_url)
        with log_context(subscriber_id=7):
            log.warning("delivery refused", extra={"delivery_id": 42})
            try:
                raise ValueError("a\nmulti-line\nerror")
            except ValueError:
                log.exception("it failed")
        app.extensions["db_engine"].dispose()

    first, second = [r for r in lines(capsys) if r["logger"] == "tests.logging"]
    assert first == {
        "time": first["time"],
        "level": "WARNING",
        "logger": "tests.logging",
        "message": "delivery refused",
        "subscriber_id": 7,
        "delivery_id": 42,
    }
    assert second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback")
    assert "multi-line" in second["exception"]


def test_the_default_stays_human_readable(config, database_url, capsys):
    with bare_root():
        empty_tables(database_url)
        app = create_app(config)
        with app.app_context():
            jobs.dispatch_digests_job(DAY.isoformat())
        app.extensions["db_engine"].dispose()

    err = capsys.readouterr().err
    assert (
        " INFO worker.delivery.dispatch: listing date 2024-11-28 is not complete; no digests yet"
        in err
    )
    assert not any(line.startswith("{") for line in err.splitlines())


def test_a_context_field_must_be_known():
    with pytest.raises(ValueError, match="not a log context field: listing"):
        with log_context(listing="2024-11-28"):
            pass
