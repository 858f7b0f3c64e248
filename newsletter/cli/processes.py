"""`newsletter worker` and `newsletter scheduler`: the long-running processes (worker/schedule.py)."""

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker (needs REDIS_URL)."""
    from newsletter.config import settings
    from worker.schedule import run_worker

    if not settings().REDIS_URL:
        raise click.ClickException(
            "REDIS_URL is not set: without Redis, jobs run inside the web process"
        )
    # The app itself, not the context-local proxy: the worker outlives this context.
    run_worker(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the one scheduler of the deployment: polls arXiv every 15 minutes (needs REDIS_URL)."""
    from newsletter.config import settings
    from worker.schedule import run_scheduler

    if not settings().REDIS_URL:
        raise click.ClickException("REDIS_URL is not set: `newsletter dev` has its own scheduler")
    try:
        run_scheduler(current_app._get_current_object())  # type: ignore[attr-defined]
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
