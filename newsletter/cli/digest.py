"""`newsletter digest preview` and `digest send`: one subscriber's digest, or a day's.

The work is in worker/delivery/dispatch.py (which asks worker/digest/core.py).
"""

import click
from flask.cli import AppGroup, with_appcontext

from newsletter.cli.dates import complete_listing_date, date_option
from newsletter.cli.progress import progress_report


@click.group("digest", cls=AppGroup)
def digest_group() -> None:
    """Preview and send the daily digests."""


@digest_group.command("preview")
@click.argument("email")
@date_option()
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part, not the text part.")
@with_appcontext
def digest_preview_command(email: str, date_text: str | None, as_html: bool) -> None:
    """Print EMAIL's digest of a listing date without sending it."""
    from sqlalchemy import select

    from newsletter import db
    from newsletter.config import settings
    from newsletter.models import Subscriber

    session = db.session()
    listing_date = complete_listing_date(date_text)
    # The digest's renderer is loaded once the date is known to be one (a bad one is refused faster).
    from worker.delivery.preview import preview_digest

    key = email.strip().casefold()
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if subscriber is None:
        raise click.ClickException(f"no subscriber with the address {email.strip()[:320]!r}")
    rendered = preview_digest(session, settings(), subscriber, listing_date)
    status = subscriber.status.value
    if status != "confirmed":
        click.echo(f"note: {subscriber.email} is {status}; no digest is sent to them", err=True)
    click.echo(rendered.html if as_html else f"Subject: {rendered.subject}\n\n{rendered.text}")


@digest_group.command("send")
@date_option()
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
    from newsletter.config import settings

    if to_workers and not settings().REDIS_URL:
        raise click.ClickException(
            "--queue needs Redis: REDIS_URL is not set (without it, "
            "`newsletter digest send` sends in this process)"
        )
    listing_date = complete_listing_date(date_text)
    if to_workers:
        from worker.schedule import queue_day

        queue_day(listing_date)
        click.echo(f"{listing_date}: queued for the workers (see `newsletter status --date`)")
        return
    from worker.delivery.dispatch import dispatch_digests
    from worker.delivery.smtp import DeliveryFailure

    try:
        with progress_report("sending digests") as progress:
            summary = dispatch_digests(listing_date, send_now=True, progress=progress)
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
