"""The `newsletter` command: Flask's CLI plus every operator command.

Each command runs inside an app context made by `create_app`.
"""

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, NoAppException, with_appcontext
from sqlalchemy import func, select
from werkzeug.serving import run_simple

from newsletter import create_app, db, migrate, subscriber_admin, subscriptions
from newsletter.config import ConfigError, config_warnings
from newsletter.db import utcnow
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    FeedFetch,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from newsletter.subscriber_file import ImportFileError, Rejection, read_file
from newsletter.subscriber_import import import_subscribers
from worker import calendar, jobs
from worker.arxiv import backfill, ingest
from worker.arxiv import store as ingest_store
from worker.arxiv.feeds import ArxivError
from worker.delivery.dispatch import dispatch_digests, preview_digest
from worker.delivery.mail import DeliveryFailure
from worker.demo.load import load_demo
from worker.queue import enqueue
from worker.schedule import (
    POLL_INTERVAL_SECONDS,
    latest_complete_day,
    poll,
    queue_day,
    run_every,
    run_scheduler,
    run_worker,
)
from worker.translation.job import translate_day

# `newsletter dev` writes this into the instance folder: the settings it ran
# with. Other commands in a shell with neither SECRET_KEY nor DATABASE_URL set
# then work on that dev instance. A production process always has SECRET_KEY
# set (it refuses to start without it), so it never reads the marker.
DEV_MARKER = "dev-instance.json"
# The settings `newsletter dev` chooses for itself when the environment does not.
DEV_SETTINGS = ("BASE_URL", "TRANSLATION_BACKEND")


def instance_folder() -> Path:
    """The instance folder `build_app` uses (NEWSLETTER_INSTANCE_PATH or Flask's default)."""
    from newsletter import instance_path

    return Path(Flask("newsletter", instance_path=instance_path()).instance_path)


def dev_marker() -> Path | None:
    """The dev instance's marker when this shell should use it, else None."""
    if os.environ.get("SECRET_KEY", "").strip() or os.environ.get("DATABASE_URL", "").strip():
        return None
    marker = instance_folder() / DEV_MARKER
    return marker if marker.is_file() else None


def write_dev_marker(settings: dict[str, str]) -> Path:
    """Record the dev instance's settings (called by `newsletter dev`)."""
    marker = instance_folder() / DEV_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return marker


def use_dev_instance() -> Path | None:
    """Take the dev instance's settings into this process if `dev_marker` says so."""
    marker = dev_marker()
    if marker is None:
        return None
    try:
        settings = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{marker} is not readable ({error}); run `newsletter dev` again"
        ) from None
    for name in DEV_SETTINGS:
        if isinstance(settings.get(name), str):
            os.environ.setdefault(name, settings[name])
    return marker


def create_cli_app():
    """The app for a command; a bad setting or a dependency down is one line, not a traceback.

    Resolving a command builds the app too, but needs no database: only a
    running command checks the database and Redis.
    """
    from newsletter import build_app
    from newsletter.dependencies import check_dependencies

    context = click.get_current_context(silent=True)
    running = context is not None and context.parent is not None
    try:
        marker = use_dev_instance()
        app = build_app(dev=marker is not None)
        app.config["DEV_INSTANCE"] = str(marker) if marker else None
        if running:
            check_dependencies(app)
    except ConfigError as error:
        message = str(error)
        if "SECRET_KEY" in message:
            message += "; or run `newsletter dev` first and use its dev instance"
        if running:
            raise click.ClickException(message) from None
        raise NoAppException(message) from None
    return app


class CommandGroup(FlaskGroup):
    """Flask's group, whose command list needs no app: every command is defined here.

    Flask's own `list_commands` and `get_command` load the app to add its
    `app.cli` commands (this app has none), so `newsletter --help` printed a
    settings error.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(click.Group.list_commands(self, ctx))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        # An unknown name is "No such command", not a settings error first.
        self._load_plugin_commands()
        return click.Group.get_command(self, ctx, name)


@click.group(cls=CommandGroup, create_app=create_cli_app, add_version_option=False)
def main() -> None:
    """arXiv digest newsletter: web, worker, scheduler and operator commands."""


@main.group("db")
def db_group() -> None:
    """Database migrations (Flask-Migrate over migrations/)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    migrate.upgrade(revision)
    click.echo(f"database at {revision}")


# downgrade, current, migrate, revision, history, heads, stamp, check, ...
for _command in migrate.flask_migrate_commands():
    db_group.add_command(_command)


# --- ingest (worker/arxiv/ingest.py, worker/arxiv/backfill.py) ---


def _parse_date_option(name: str, value: str | None):

    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.ClickException(
            f"{name} must be a date like 2024-11-28, got {value!r}"
        ) from None


@main.command("ingest")
@click.option("--file", "path", metavar="PATH", help="A saved RSS, Atom or OAI-PMH document.")
@click.option(
    "--date",
    "date_text",
    metavar="D",
    help="The listing date (with --file), or backfill it from OAI-PMH.",
)
@click.option(
    "--since",
    "since_text",
    metavar="D",
    help="Backfill every listing date from D to the due one (OAI-PMH).",
)
@with_appcontext
def ingest_command(path: str | None, date_text: str | None, since_text: str | None) -> None:
    """Ingest arXiv announcements: the due listing date, a saved file, or a backfill."""

    day = _parse_date_option("--date", date_text)
    since = _parse_date_option("--since", since_text)
    if since is not None and (day is not None or path is not None):
        raise click.ClickException("--since cannot be combined with --date or --file")
    try:
        if path is not None:
            summaries = ingest.ingest_file(path, day)
        elif day is not None:
            summaries = backfill.ingest_oai(day, day)
        elif since is not None:
            summaries = backfill.ingest_oai(since, calendar.due_listing_date(utcnow()))
        else:
            summaries = [ingest.ingest_due(utcnow())]
    except (ArxivError, ingest_store.IngestError) as error:
        raise click.ClickException(str(error)) from None
    for summary in summaries:
        click.echo(summary.line())
    if path is None and day is None and since is None and not summaries[0].complete:
        # The due date is not complete yet (errors, stale feeds): say so in the exit code.
        raise SystemExit(1)


@main.command("status")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 100))
@click.option("--date", "date_text", metavar="D", help="Show this listing date only.")
@with_appcontext
def status_command(days: int, date_text: str | None) -> None:
    """Show the last listing dates ingested (counts, warnings, deliveries) and the next one expected."""

    click.echo(_instance_line(current_app.config))
    for warning in config_warnings(current_app.config):
        click.echo(f"warning: {warning}")
    listing_date = _parse_date_option("--date", date_text)
    if listing_date is not None:
        day = _day_status(listing_date)
        papers = _paper_counts([listing_date])[listing_date]
        if day is None:
            click.echo(f"{listing_date}: {not_listed_message(listing_date) or 'nothing ingested'}")
        else:
            _echo_day(day, papers)
        _echo_deliveries(listing_date, _delivery_counts([listing_date])[listing_date])
        return
    now = utcnow()
    due = calendar.due_listing_date(now)
    upcoming, rebuild = calendar.next_expected(now)
    click.echo(f"due listing date: {due}")
    click.echo(
        f"next expected: {upcoming} (announced {calendar.announcement_instant(upcoming):%a %Y-%m-%d %H:%M %Z}, "
        f"feeds from {rebuild:%a %Y-%m-%d %H:%M %Z})"
    )
    recent = ingest_store.recent_days(days)
    if not recent:
        click.echo("nothing ingested yet")
    dates = [day.listing_date for day in recent]
    counts = _delivery_counts(dates)
    papers = _paper_counts(dates)
    for day in recent:
        _echo_day(day, papers[day.listing_date])
        _echo_deliveries(day.listing_date, counts[day.listing_date])


def _instance_line(config) -> str:
    """Which settings this command runs on: say so, since the dev marker can choose them."""
    if config.get("DEV_INSTANCE"):
        return (
            f"instance: dev (settings of `newsletter dev` from {config['DEV_INSTANCE']}, "
            f"database {config['DATABASE_URL']})"
        )
    mode = "dev mode" if config["DEV"] else "production"
    return f"instance: {mode} (settings from the environment)"


def not_listed_message(listing_date: date) -> str | None:
    """None for a listing date; else why arXiv lists nothing then and the nearest listing dates."""
    if calendar.is_listing_date(listing_date):
        return None
    before = calendar.previous_listing_date(listing_date)
    after = calendar.next_listing_date(listing_date)
    why = "a weekend" if listing_date.weekday() >= 5 else "an arXiv holiday"
    return (
        f"arXiv lists nothing on {listing_date:%A} {listing_date} ({why}): "
        f"the nearest listing dates are {before:%a} {before} and {after:%a} {after}"
    )


def _day_status(listing_date: date) -> ingest_store.DayStatus | None:
    """One listing date's ingest record, as `recent_days` gives it, or None."""
    session = db.session()
    day = session.get(ListingDay, listing_date)
    if day is None:
        return None
    fetches = session.scalars(
        select(FeedFetch)
        .where(FeedFetch.listing_date == listing_date)
        .order_by(FeedFetch.archive_group)
    ).all()
    return ingest_store.DayStatus(listing_date, day.completed_at, list(fetches))


def _paper_counts(listing_dates: list[date]) -> dict[date, Counter]:
    """Papers stored per announce type for each listing date, from the papers table, in one query.

    What the digests are made from. The fetch records count feed items, and the
    demo day has none: status said `0 items` for its 66 papers.
    """
    result: dict[date, Counter] = {day: Counter() for day in listing_dates}
    if listing_dates:
        rows = db.session().execute(
            select(Paper.listing_date, Paper.announce_type, func.count())
            .where(Paper.listing_date.in_(listing_dates))
            .group_by(Paper.listing_date, Paper.announce_type)
        )
        for listing_date, announce_type, count in rows:
            result[listing_date][announce_type.value] = count
    return result


def _echo_day(day: ingest_store.DayStatus, papers: Counter) -> None:
    state = f"complete {day.completed_at:%Y-%m-%d %H:%M} UTC" if day.completed_at else "INCOMPLETE"
    types = ", ".join(f"{papers[t]} {t}" for t in ingest_store.TYPE_RANK)
    click.echo(f"{day.listing_date} {state}: {sum(papers.values())} items ({types}) stored")
    for fetch in day.fetches:
        line = (
            f"  {fetch.archive_group} [{fetch.source}]: feed dated {fetch.feed_date or '-'}, "
            f"{ingest_store.total_items(fetch)} items, fetched {fetch.fetched_at:%Y-%m-%d %H:%M} UTC"
        )
        if fetch.warning:
            line += f"\n    warning: {fetch.warning}"
        click.echo(line)


def _delivery_counts(listing_dates: list[date]) -> dict[date, Counter]:
    """Delivery rows per status of each listing date, in one query."""
    result: dict[date, Counter] = {day: Counter() for day in listing_dates}
    if listing_dates:
        rows = db.session().execute(
            select(Delivery.listing_date, Delivery.status, func.count())
            .where(Delivery.listing_date.in_(listing_dates))
            .group_by(Delivery.listing_date, Delivery.status)
        )
        for listing_date, status, count in rows:
            result[listing_date][status] = count
    return result


def _echo_deliveries(listing_date: date, counts: Counter) -> None:
    order = (
        DeliveryStatus.SENT,
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENDING,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
    )
    figures = ", ".join(f"{counts[status]} {status.value}" for status in order)
    click.echo(f"deliveries {listing_date}: {figures}")


# --- digest (worker/digest/core.py) ---


_DIGEST_DATE_HELP = "The listing date (default: the latest complete one)."


@main.group("digest")
def digest_group() -> None:
    """Preview and send the daily digests."""


def _digest_date(date_text: str | None):
    """The --date given, or the latest complete listing date; refuse one not ingested."""
    session = db.session()
    listing_date = _parse_date_option("--date", date_text)
    if listing_date is None:
        listing_date = latest_complete_day()
        if listing_date is None:
            raise click.ClickException("no complete listing date yet; ingest one first")
        return listing_date
    not_listed = not_listed_message(listing_date)
    if not_listed:
        raise click.ClickException(not_listed)
    day = session.get(ListingDay, listing_date)
    if day is None or day.completed_at is None:
        raise click.ClickException(
            f"listing date {listing_date} is not completely ingested (see `newsletter status`)"
        )
    return listing_date


@digest_group.command("preview")
@click.argument("email")
@click.option("--date", "date_text", metavar="D", help=_DIGEST_DATE_HELP)
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part, not the text part.")
@with_appcontext
def digest_preview_command(email: str, date_text: str | None, as_html: bool) -> None:
    """Print EMAIL's digest of a listing date without sending it."""

    session = db.session()
    listing_date = _digest_date(date_text)
    key = email.strip().casefold()
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if subscriber is None:
        raise click.ClickException(f"no subscriber with the address {email.strip()[:320]!r}")
    rendered = preview_digest(session, current_app.config, subscriber, listing_date)
    status = subscriber.status.value
    if status != "confirmed":
        click.echo(f"note: {subscriber.email} is {status}; no digest is sent to them", err=True)
    click.echo(rendered.html if as_html else f"Subject: {rendered.subject}\n\n{rendered.text}")


@digest_group.command("send")
@click.option("--date", "date_text", metavar="D", help=_DIGEST_DATE_HELP)
@click.option(
    "--queue",
    "to_workers",
    is_flag=True,
    help="Hand the day to the workers (as the scheduler does) and return at once.",
)
@with_appcontext
def digest_send_command(date_text: str | None, to_workers: bool) -> None:
    """Send a listing date's digests now, in this process; print what happened.

    Deliveries already sent are never sent again; subscribers whose delivery
    hour has not come (or waiting for translations) are left for later.
    With --queue the workers send them instead (needs REDIS_URL).
    """

    if to_workers and not current_app.config["REDIS_URL"]:
        raise click.ClickException(
            "--queue needs Redis: REDIS_URL is not set (without it, "
            "`newsletter digest send` sends in this process)"
        )
    listing_date = _digest_date(date_text)
    if to_workers:
        queue_day(listing_date)
        click.echo(f"{listing_date}: queued for the workers (see `newsletter status --date`)")
        return
    try:
        summary = dispatch_digests(listing_date, send_now=True)
    except (DeliveryFailure, OSError) as error:
        raise click.ClickException(f"cannot send: {error}") from None
    sending = summary.sending
    click.echo(
        f"{listing_date}: sent {sending.sent}, skipped {summary.skipped + sending.skipped}, "
        f"failed {sending.failed + summary.given_up}"
    )
    if summary.held:
        click.echo(f"held for later (delivery hour or translation): {summary.held}")
    if sending.deferred:
        click.echo(f"deferred after temporary SMTP failures (left queued): {sending.deferred}")
    if sending.not_claimed:
        click.echo(f"being sent by another worker: {sending.not_claimed}")
    if sending.stopped:
        raise click.ClickException(f"sending stopped early: {sending.stopped}")


# --- subscribers (newsletter/subscriber_import.py) ---


@main.group("subscribers")
def subscribers_group() -> None:
    """Manage subscribers: import and export lists; find, suppress or delete one."""


@subscribers_group.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False))
@click.option(
    "--confirmed",
    is_flag=True,
    help="Store them confirmed (they opted in elsewhere); no confirmation email.",
)
@with_appcontext
def subscribers_import_command(path: str, confirmed: bool) -> None:
    """Add subscribers from a CSV file: email,keywords,language,timezone
    (optional: delivery_hour, include_replacements).

    Each row is checked as the sign-up form checks it; refused rows are listed
    on stderr with their line number and nothing of them is stored. Addresses
    already subscribed are skipped. Without --confirmed each new address gets
    the confirmation email. Exits 1 if any row was refused.
    """

    config = current_app.config

    def report(rejection: Rejection) -> None:
        click.echo(f"line {rejection.line}: {rejection.reason}", err=True)

    def confirm(subscriber_ids: list[int]) -> None:
        # As the sign-up view: after the commit that made the rows.
        if not confirmed:
            for subscriber_id in subscriber_ids:
                enqueue(jobs.send_confirmation, subscriber_id)

    try:
        summary = import_subscribers(
            db.session(),
            read_file(path),
            path,
            confirmed=confirmed,
            offered_languages=subscriptions.offered_languages(),
            check_deliverability=config["EMAIL_CHECK_DELIVERABILITY"],
            on_reject=report,
            after_commit=confirm,
        )
    except ImportFileError as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary.line())
    if summary.rejected:
        raise SystemExit(1)


# --- one subscriber at a time (newsletter/subscriber_admin.py) ---


@subscribers_group.command("find")
@click.argument("email")
@with_appcontext
def subscribers_find_command(email: str) -> None:
    """Show EMAIL's status, settings, keywords and last deliveries."""
    session = db.session()
    try:
        subscriber = subscriber_admin.find_subscriber(session, email)
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None
    click.echo("\n".join(subscriber_admin.describe_subscriber(session, subscriber)))


@subscribers_group.command("suppress")
@click.argument("email")
@with_appcontext
def subscribers_suppress_command(email: str) -> None:
    """Send EMAIL no further mail (status blocklisted); a sign-up does not undo it."""
    try:
        click.echo(subscriber_admin.suppress_subscriber(db.session(), email))
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None


@subscribers_group.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def subscribers_delete_command(email: str, yes: bool) -> None:
    """Delete EMAIL with their keywords and deliveries (asks first unless --yes)."""
    session = db.session()
    try:
        subscriber = subscriber_admin.find_subscriber(session, email)
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None
    deliveries = subscriber_admin.count_deliveries(session, subscriber)
    if not yes:
        click.confirm(
            f"Delete {subscriber.email} ({subscriber.status.value}) and their "
            f"{deliveries} deliveries?",
            abort=True,
        )
    click.echo(subscriber_admin.delete_subscriber(session, subscriber))


@subscribers_group.command("export")
@click.argument("path", metavar="FILE.csv")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    default=["confirmed"],
    show_default=True,
    type=click.Choice([status.value for status in SubscriberStatus]),
    help="Export subscribers with this status (repeat for several).",
)
@with_appcontext
def subscribers_export_command(path: str, statuses: tuple[str, ...]) -> None:
    """Write subscribers to FILE.csv in the format `subscribers import` reads.

    The file has no status column: `subscribers import --confirmed` stores
    every row confirmed again.
    """
    chosen = [SubscriberStatus(status) for status in statuses]
    try:
        count = subscriber_admin.export_subscribers(db.session(), path, chosen)
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"exported {count} subscribers ({', '.join(statuses)}) to {path}")


# --- translate (worker/translation/job.py) ---
@main.command("translate")
@click.option(
    "--date", "date_text", metavar="D", help="The listing date (default: the latest complete one)."
)
@with_appcontext
def translate_command(date_text: str | None) -> None:
    """Translate what a listing date's bilingual digests need; print what was done."""

    config = current_app.config
    if config["TRANSLATION_BACKEND"] == "none":
        raise click.ClickException("TRANSLATION_BACKEND is none: digests are English only")
    listing_date = _digest_date(date_text)
    # By hand the deadline does not apply: an operator may fill gaps after the digests went out.
    click.echo(translate_day(db.session(), config, listing_date, respect_deadline=False))


# --- late bounces and complaints (worker/bounces/) ---


@main.group("bounces")
def bounces_group() -> None:
    """Late bounces and complaints."""


@bounces_group.command("poll")
@with_appcontext
def bounces_poll_command() -> None:
    """Read the unseen reports in BOUNCE_IMAP_URL's mailbox now; print what each did."""
    import imaplib

    if not current_app.config["BOUNCE_IMAP_URL"]:
        raise click.ClickException("BOUNCE_IMAP_URL is not set: there is no mailbox to read")
    try:
        outcomes = jobs.poll_bounces()
    except (imaplib.IMAP4.error, OSError, ValueError) as error:
        raise click.ClickException(f"bounce mailbox (BOUNCE_IMAP_URL): {error}") from None
    if not outcomes:
        click.echo("no new reports")
    for outcome, count in sorted(outcomes.items()):
        click.echo(f"{outcome}: {count}")


# --- processes ---


@main.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker (needs REDIS_URL)."""

    if not current_app.config["REDIS_URL"]:
        raise click.ClickException(
            "REDIS_URL is not set: without Redis, jobs run inside the web process"
        )
    run_worker(current_app._get_current_object(), burst=burst)


@main.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the one scheduler of the deployment: polls arXiv every 15 minutes (needs REDIS_URL)."""

    if not current_app.config["REDIS_URL"]:
        raise click.ClickException("REDIS_URL is not set: `newsletter dev` has its own scheduler")
    try:
        run_scheduler(current_app._get_current_object())
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None


@main.command("dev", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--live",
    is_flag=True,
    help="Also poll arXiv every 15 minutes, as production does (default: the demo day only).",
)
def dev_command(host: str, port: int, live: bool) -> None:
    """Run everything in one process on embedded defaults: web, jobs, scheduler, outbox."""
    os.environ.setdefault("BASE_URL", f"http://{host}:{port}")
    # Bilingual digests from the sample day's recorded translations, no API key.
    os.environ.setdefault("TRANSLATION_BACKEND", "recorded")
    app = create_app(dev=True)
    with app.app_context():
        migrate.upgrade()
        demo_date = load_demo(db.session())
        db.session().commit()
    marker = write_dev_marker({name: app.config[name] for name in DEV_SETTINGS})
    quiet = QuietSteps()
    quiet.install()
    stop = threading.Event()
    steps: list[tuple[Callable[[], None], float]] = [
        (lambda: dispatch_quietly(quiet, demo_date), 15.0)
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
        f"\n  arXiv digest is running (dev mode, SQLite at {app.config['DATABASE_URL']}).\n"
        f"  Open {app.config['BASE_URL']}/ to subscribe; mail appears at "
        f"{app.config['BASE_URL']}/dev/outbox/\n"
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


if __name__ == "__main__":
    main()
