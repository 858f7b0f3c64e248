"""Listing dates given on the command line: one reading and one check for every command.

Used by the `ingest`, `status`, `digest` and `translate` commands.
"""

from collections.abc import Callable
from datetime import date
from typing import Any

import click

from worker import calendar

LATEST_COMPLETE_HELP = "The listing date (default: the latest complete one)."


def date_option(help: str = LATEST_COMPLETE_HELP) -> Callable[[Any], Any]:
    """The `--date D` option, passed as `date_text` (read it with `parse_date_option`)."""
    return click.option("--date", "date_text", metavar="D", help=help)


def parse_date_option(name: str, value: str | None) -> date | None:
    """The date an option names, or None when it is not given; a bad one is one line."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.ClickException(
            f"{name} must be a date like 2024-11-28, got {value!r}"
        ) from None


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


def complete_listing_date(date_text: str | None) -> date:
    """The --date given, or the latest complete listing date; refuse one not ingested."""
    from newsletter import db
    from newsletter.models import ListingDay

    listing_date = parse_date_option("--date", date_text)
    if listing_date is None:
        # The RQ edge (and with it the whole pipeline): only when no date is given.
        from worker.schedule import latest_complete_day

        listing_date = latest_complete_day()
        if listing_date is None:
            raise click.ClickException("no complete listing date yet; ingest one first")
        return listing_date
    not_listed = not_listed_message(listing_date)
    if not_listed:
        raise click.ClickException(not_listed)
    day = db.session().get(ListingDay, listing_date)
    if day is None or day.completed_at is None:
        raise click.ClickException(
            f"listing date {listing_date} is not completely ingested (see `newsletter status`)"
        )
    return listing_date
