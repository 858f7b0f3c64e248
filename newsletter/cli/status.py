"""`newsletter status`: the settings in use, the last listing dates, their deliveries.

The command's options; what it prints is newsletter/cli/status_report.py,
imported when it runs (it needs the database models, which `--help` does not).
"""

import click
from flask.cli import with_appcontext

from newsletter.cli.dates import date_option


@click.command("status")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 100))
@date_option("Show this listing date only.")
@with_appcontext
def status_command(days: int, date_text: str | None) -> None:
    """Show the last listing dates ingested (counts, warnings, deliveries) and the next one expected."""
    from newsletter.cli.status_report import show_status

    show_status(days, date_text)
