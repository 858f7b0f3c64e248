"""`newsletter subscribers ...`: import and export lists; find, suppress or delete one.

The work is in newsletter/subscriber_import.py (with subscriber_file.py) and
newsletter/subscriber_admin.py; these commands parse options and print.
"""

from collections.abc import Sequence

import click
from flask.cli import AppGroup, with_appcontext

from newsletter.cli.progress import progress_report


class StatusChoice(click.Choice):
    """click's Choice of the subscriber statuses, read from the models when it is shown or used.

    Not when the option is declared: that is at `newsletter --help`, which
    would load SQLAlchemy for it.
    """

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> Sequence[str]:
        from newsletter.models import SubscriberStatus

        return tuple(status.value for status in SubscriberStatus)

    @choices.setter
    def choices(self, _value: Sequence[str]) -> None:
        pass  # click's __init__ sets the choices given; these are the models' own


@click.group("subscribers", cls=AppGroup)
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
    (optional: delivery_hour, include_replacements, tldr, frequency (daily or
    weekly), weekday (monday..sunday, for weekly)).

    Each row is checked as the sign-up form checks it; refused rows are listed
    on stderr with their line number and nothing of them is stored. Addresses
    already subscribed are skipped. Without --confirmed each new address gets
    the confirmation email. Exits 1 if any row was refused.
    """
    from newsletter import db, subscription_forms
    from newsletter.config import settings
    from newsletter.subscriber_file import ImportFileError, Rejection, read_file
    from newsletter.subscriber_import import import_subscribers
    from worker.queue import enqueue

    config = settings()

    def report(rejection: Rejection) -> None:
        click.echo(f"line {rejection.line}: {rejection.reason}", err=True)

    def confirm(subscriber_ids: list[int]) -> None:
        # As the sign-up view: after the commit that made the rows.
        if not confirmed:
            for subscriber_id in subscriber_ids:
                enqueue("worker.jobs.send_confirmation", subscriber_id)

    try:
        with progress_report("importing rows") as progress:
            summary = import_subscribers(
                db.session(),
                read_file(path),
                path,
                confirmed=confirmed,
                offered_languages=subscription_forms.offered_languages(),
                check_deliverability=config.EMAIL_CHECK_DELIVERABILITY,
                on_reject=report,
                after_commit=confirm,
                progress=progress,
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
    from newsletter import db, subscriber_admin

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
    from newsletter import db, subscriber_admin

    try:
        click.echo(subscriber_admin.suppress_subscriber(db.session(), email))
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None


@subscribers_group.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def subscribers_delete_command(email: str, yes: bool) -> None:
    """Erase EMAIL as the manage page's "Erase my data" does, without its email: their
    keywords go, their sent digests stay as anonymous counts (asks first unless --yes)."""
    from newsletter import db, subscriber_admin

    session = db.session()
    try:
        subscriber = subscriber_admin.find_subscriber(session, email)
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None
    deliveries = subscriber_admin.count_deliveries(session, subscriber)
    if not yes:
        click.confirm(
            f"Delete {subscriber.email} ({subscriber.status.value}) and their keywords? "
            f"Their {deliveries} deliveries stay as anonymous counts (unsent ones go).",
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
    type=StatusChoice(),
    help="Export subscribers with this status (repeat for several).",
)
@with_appcontext
def subscribers_export_command(path: str, statuses: tuple[str, ...]) -> None:
    """Write subscribers to FILE.csv in the format `subscribers import` reads.

    The file has no status column: `subscribers import --confirmed` stores
    every row confirmed again.
    """
    from newsletter import db, subscriber_admin
    from newsletter.models import SubscriberStatus

    chosen = [SubscriberStatus(status) for status in statuses]
    try:
        count = subscriber_admin.export_subscribers(db.session(), path, chosen)
    except subscriber_admin.AdminError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"exported {count} subscribers ({', '.join(statuses)}) to {path}")
