"""`newsletter bounces poll`: read the bounce mailbox now (worker/bounces/mailbox.py)."""

import click
from flask.cli import AppGroup, with_appcontext


@click.group("bounces", cls=AppGroup)
def bounces_group() -> None:
    """Late bounces and complaints."""


@bounces_group.command("poll")
@with_appcontext
def bounces_poll_command() -> None:
    """Read the unseen reports in BOUNCE_IMAP_URL's mailbox now; print what each did."""
    import imaplib

    from newsletter.config import settings
    from worker import jobs

    if not settings().BOUNCE_IMAP_URL:
        raise click.ClickException("BOUNCE_IMAP_URL is not set: there is no mailbox to read")
    try:
        outcomes = jobs.poll_bounces()
    except (imaplib.IMAP4.error, OSError, ValueError) as error:
        raise click.ClickException(f"bounce mailbox (BOUNCE_IMAP_URL): {error}") from None
    if not outcomes:
        click.echo("no new reports")
    for outcome, count in sorted(outcomes.items()):
        click.echo(f"{outcome}: {count}")
