"""What `newsletter status` prints: the settings in use, the last listing dates, their deliveries.

Imported by newsletter/cli/status.py when the command runs. Reads the ingest
records (worker/arxiv/store.py) and counts papers and deliveries per listing
date in one query each.
"""

from collections import Counter
from datetime import date

import click
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from newsletter import db
from newsletter.cli.dates import not_listed_message, parse_date_option
from newsletter.config import Settings, config_warnings, settings
from newsletter.db import utcnow
from newsletter.models import Delivery, DeliveryStatus, FeedFetch, ListingDay, Paper
from worker import calendar
from worker.arxiv import store as ingest_store
from worker.arxiv.fetches import DayStatus, recent_days, total_items


def show_status(days: int, date_text: str | None) -> None:
    """The `status` command's lines: one listing date's (`--date`) or the last `days`' ones."""
    click.echo(_instance_line(current_app.config.get("DEV_INSTANCE"), settings()))
    for warning in config_warnings(settings()):
        click.echo(f"warning: {warning}")
    listing_date = parse_date_option("--date", date_text)
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
    recent = recent_days(days)
    if not recent:
        click.echo("nothing ingested yet")
    dates = [day.listing_date for day in recent]
    counts = _delivery_counts(dates)
    papers_by_date = _paper_counts(dates)
    for day in recent:
        _echo_day(day, papers_by_date[day.listing_date])
        _echo_deliveries(day.listing_date, counts[day.listing_date])


def _instance_line(dev_instance: str | None, config: Settings) -> str:
    """Which settings this command runs on: say so, since the dev marker can choose them."""
    if dev_instance:
        return (
            f"instance: dev (settings of `newsletter dev` from {dev_instance}, "
            f"database {config.DATABASE_URL})"
        )
    mode = "dev mode" if config.DEV else "production"
    return f"instance: {mode} (settings from the environment)"


def _day_status(listing_date: date) -> DayStatus | None:
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
    return DayStatus(listing_date, day.completed_at, list(fetches))


def _paper_counts(listing_dates: list[date]) -> dict[date, Counter]:
    """Papers stored per announce type for each listing date, from the papers table, in one query.

    What the digests are made from. The fetch records count feed items, and the
    demo day has none: status said `0 items` for its 66 papers.
    """
    return _counts_per_date(listing_dates, Paper.listing_date, Paper.announce_type)


def _counts_per_date(
    listing_dates: list[date], day_column: InstrumentedAttribute, kind_column: InstrumentedAttribute
) -> dict[date, Counter]:
    """Rows per value of `kind_column` (an enum, counted by its value) for each date, in one query."""
    result: dict[date, Counter] = {day: Counter() for day in listing_dates}
    if listing_dates:
        rows = db.session().execute(
            select(day_column, kind_column, func.count())
            .where(day_column.in_(listing_dates))
            .group_by(day_column, kind_column)
        )
        for listing_date, kind, count in rows:
            result[listing_date][kind.value] = count
    return result


def _echo_day(day: DayStatus, papers: Counter) -> None:
    state = f"complete {day.completed_at:%Y-%m-%d %H:%M} UTC" if day.completed_at else "INCOMPLETE"
    types = ", ".join(f"{papers[t]} {t}" for t in ingest_store.TYPE_RANK)
    click.echo(f"{day.listing_date} {state}: {sum(papers.values())} items ({types}) stored")
    for fetch in day.fetches:
        line = (
            f"  {fetch.archive_group} [{fetch.source}]: feed dated {fetch.feed_date or '-'}, "
            f"{total_items(fetch)} items, fetched {fetch.fetched_at:%Y-%m-%d %H:%M} UTC"
        )
        if fetch.warning:
            line += f"\n    warning: {fetch.warning}"
        click.echo(line)


def _delivery_counts(listing_dates: list[date]) -> dict[date, Counter]:
    """Delivery rows per status of each listing date, in one query."""
    return _counts_per_date(listing_dates, Delivery.listing_date, Delivery.status)


def _echo_deliveries(listing_date: date, counts: Counter) -> None:
    order = (
        DeliveryStatus.SENT,
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENDING,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
    )
    figures = ", ".join(f"{counts[status.value]} {status.value}" for status in order)
    click.echo(f"deliveries {listing_date}: {figures}")
