"""`newsletter dev`: web, jobs, scheduler and outbox in one process on embedded defaults.

It records its settings (newsletter/cli/instance.py) so that the other
commands in the same shell work on its instance.
"""

import logging
import os
import threading
from collections.abc import Callable
from datetime import date

import click

from newsletter.cli.instance import DEV_SETTINGS, write_dev_marker


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--live",
    is_flag=True,
    help="Also poll arXiv every 15 minutes, as production does (default: the demo day only).",
)
def dev_command(host: str, port: int, live: bool) -> None:
    """Run everything in one process on embedded defaults: web, jobs, scheduler, outbox."""
    from werkzeug.serving import run_simple

    from newsletter import create_app, db, migrate
    from newsletter.config import settings
    from worker.demo.load import load_demo
    from worker.schedule import POLL_INTERVAL_SECONDS, run_every

    os.environ.setdefault("BASE_URL", f"http://{host}:{port}")
    # Bilingual digests from the sample day's recorded translations, no API key.
    os.environ.setdefault("TRANSLATION_BACKEND", "recorded")
    app = create_app(dev=True)
    with app.app_context():
        migrate.upgrade()
        demo_date = load_demo(db.session())
        db.session().commit()
    marker = write_dev_marker({name: getattr(settings(app), name) for name in DEV_SETTINGS})
    quiet = QuietSteps()
    quiet.install()
    stop = threading.Event()
    steps: list[tuple[Callable[[], None], float]] = [
        (lambda: dispatch_quietly(quiet, demo_date), settings(app).DEV_DISPATCH_SECONDS)
    ]
    if live:
        steps.append((lambda: poll_quietly(quiet), POLL_INTERVAL_SECONDS))
    for step, seconds in steps:
        threading.Thread(target=run_every, args=(app, stop, step, seconds), daemon=True).start()
    polling = (
        "  Polling arXiv every 15 minutes (--live).\n"
        if live
        else "  arXiv is not polled (run `newsletter dev --live` to ingest today's listing).\n"
    )
    click.echo(
        f"\n  arXiv digest is running (dev mode, SQLite at {settings(app).DATABASE_URL}).\n"
        f"  Open {settings(app).BASE_URL}/ to subscribe; mail appears at "
        f"{settings(app).BASE_URL}/dev/outbox/\n"
        f"  Demo listing date {demo_date}: subscribe with 'reinforcement learning' and\n"
        f"  'diffusion policy' to get its digest within a minute of confirming.\n"
        f"{polling}"
        f"  Other commands in this shell (`newsletter status`, ...) use this instance\n"
        f"  while SECRET_KEY and DATABASE_URL are unset ({marker}).\n"
    )
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        stop.set()


class QuietSteps(logging.Filter):
    """Holds back the log records of a dev scheduler step, so the step decides what is shown.

    Installed on the root logger's handlers by `newsletter dev`: a step that
    found nothing to do prints nothing, and a failed arXiv poll prints one
    line instead of every retry and every group's error.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held = threading.local()

    def install(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        held = getattr(self._held, "records", None)
        if held is None:
            return True
        held.append(record)
        return False

    def hold(self) -> None:
        self._held.records = []

    def release(self) -> list[logging.LogRecord]:
        records, self._held.records = self._held.records, None
        return records


def emit(records: list[logging.LogRecord]) -> None:
    """Log records held back by `QuietSteps`, as they would have been."""
    for record in records:
        logging.getLogger(record.name).handle(record)


def dispatch_quietly(quiet: QuietSteps, listing_date: date) -> None:
    """The dev scheduler's dispatch of the demo day, logged only when it did something."""
    from newsletter import db
    from newsletter.models import ListingDay
    from worker.delivery.dispatch import dispatch_digests
    from worker.schedule import queue_day

    day = db.session().get(ListingDay, listing_date)
    if day is None or day.translated_at is None:
        queue_day(listing_date)  # the translation job first: rare, so logged as it is
        return
    quiet.hold()
    try:
        summary = dispatch_digests(listing_date)
    finally:
        records = quiet.release()
    if (
        summary.queued
        or summary.skipped
        or summary.claimable
        or summary.given_up
        or any(record.levelno >= logging.WARNING for record in records)
    ):
        emit(records)


def poll_quietly(quiet: QuietSteps) -> None:
    """The dev scheduler's arXiv poll (--live): its lines if it worked, one warning if not."""
    from worker.schedule import poll

    log = logging.getLogger("newsletter.dev")
    quiet.hold()
    try:
        poll()
    except Exception as error:  # the next poll tries again; one line, no traceback
        quiet.release()
        log.warning(
            "arXiv poll failed (%s: %s); next poll in 15 minutes", type(error).__name__, error
        )
        return
    records = quiet.release()
    problems = [record for record in records if record.levelno >= logging.WARNING]
    if not problems:
        emit(records)
        return
    # The groups that failed (errors) say more than the retries before them (warnings).
    errors = [record for record in problems if record.levelno >= logging.ERROR]
    problems = errors or problems
    first = problems[0].getMessage().splitlines()[0]
    log.warning(
        "arXiv poll: %d problem(s), first: %s; next poll in 15 minutes", len(problems), first
    )
