"""One subscriber at a time, from the CLI: `newsletter subscribers find|suppress|delete|export`.

Called by newsletter/cli/subscribers.py, whose commands only parse options and print.
Owns looking an address up as the sign-up form would store it, describing a
subscriber, suppressing one (status blocklisted: the sender skips any digest
still queued for them, and sign-ups never revive them), deleting one (the
subscriber's own erasure: their sent digests stay as anonymous counts), and
writing the list in the import format of
`subscribers import` (newsletter/subscriber_import.py), so an export imports
back as the same subscribers. Each function that writes commits its own unit
of work. Bad input is an AdminError with a one-line message.
"""

import csv
from collections.abc import Collection, Iterator
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import forms
from newsletter.db import utcnow
from newsletter.models import WEEKLY, Delivery, Keyword, Subscriber, SubscriberStatus
from newsletter.personal_data import erase_subscriber
from newsletter.subscriber_file import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, WEEKDAY_NAMES

# Deliveries `find` shows, newest first.
RECENT_DELIVERIES = 10
# Subscribers read per query while exporting: memory stays flat for any list size.
EXPORT_BATCH = 1000
EXPORT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class AdminError(Exception):
    """The operator's input cannot be used (a malformed or unknown address, a bad path)."""


def find_subscriber(session: Session, raw_email: str) -> Subscriber:
    """The subscriber with this address (any case), or AdminError."""
    shown = raw_email.strip()[:320]
    email, error = forms.clean_email(raw_email, check_deliverability=False)
    if error or email is None:
        raise AdminError(f"{shown!r}: {error}")
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == email.casefold()))
    if subscriber is None:
        raise AdminError(f"no subscriber with the address {shown!r}")
    return subscriber


def _frequency(subscriber: Subscriber) -> str:
    if subscriber.frequency == WEEKLY and subscriber.weekday is not None:
        return f"weekly on {WEEKDAY_NAMES[subscriber.weekday].title()}"
    return subscriber.frequency


def describe_subscriber(session: Session, subscriber: Subscriber) -> list[str]:
    """Lines about one subscriber: status, settings, keywords, their last deliveries."""
    hour = subscriber.delivery_hour
    lines = [
        subscriber.email,
        f"  status: {subscriber.status.value}",
        f"  language: {subscriber.language}, timezone: {subscriber.timezone}, "
        f"delivery hour: {'as soon as ready' if hour is None else f'{hour}:00'}, "
        f"replacements: {'yes' if subscriber.include_replacements else 'no'}",
        f"  digests: {_frequency(subscriber)}",
        f"  signed up {_when(subscriber.created_at)}, confirmed {_when(subscriber.confirmed_at)}, "
        f"unsubscribed {_when(subscriber.unsubscribed_at)}, hard bounces {subscriber.bounce_count}",
        "  keywords:",
        *(f"    {line}" for line in subscriber.keyword_lines),
    ]
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.listing_date.desc())
        .limit(RECENT_DELIVERIES)
    ).all()
    lines.append(
        f"  last deliveries ({len(deliveries)} shown):" if deliveries else "  no deliveries"
    )
    for row in deliveries:
        line = f"    {row.listing_date} {row.status.value}, {row.paper_count} papers"
        if row.sent_at:
            line += f", sent {_when(row.sent_at)}"
        if row.attempts > 1:
            line += f", {row.attempts} attempts"
        if row.error:
            line += f": {' '.join(row.error.split())[:200]}"
        lines.append(line)
    return lines


def _when(instant: datetime | None) -> str:
    return f"{instant:%Y-%m-%d %H:%M} UTC" if instant else "-"


def suppress_subscriber(session: Session, raw_email: str) -> str:
    """Stop all mail to an address (status blocklisted); idempotent. Returns what was done."""
    subscriber = find_subscriber(session, raw_email)
    if subscriber.status is SubscriberStatus.BLOCKLISTED:
        return f"{subscriber.email} was already suppressed"
    before = subscriber.status.value
    subscriber.status = SubscriberStatus.BLOCKLISTED
    subscriber.updated_at = utcnow()
    session.commit()
    return f"{subscriber.email} suppressed (was {before}); no further mail is sent to it"


def delete_subscriber(session: Session, subscriber: Subscriber) -> str:
    """Erase a subscriber as the manage page's "Erase my data" does, without its
    last email (newsletter/personal_data.py); returns what was done."""
    email = subscriber.email
    erased = erase_subscriber(session, subscriber)
    session.commit()
    session.expunge_all()
    if erased is None:
        return f"{email} was already erased"
    return (
        f"{email} deleted with their keywords; {erased.kept} deliveries kept as anonymous "
        f"counts, {erased.dropped} unsent dropped"
    )


def count_deliveries(session: Session, subscriber: Subscriber) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.subscriber_id == subscriber.id)
        )
        or 0
    )


def export_subscribers(session: Session, path: str, statuses: Collection[SubscriberStatus]) -> int:
    """Write the subscribers with these statuses to `path` in the import format; return how many.

    The format carries no status: `subscribers import --confirmed` makes
    every row confirmed again, so export confirmed subscribers for that.
    """
    try:
        with open(path, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(EXPORT_COLUMNS)
            count = 0
            for row in export_rows(session, statuses):
                writer.writerow(row)
                count += 1
    except OSError as error:
        raise AdminError(f"{path}: cannot write: {error.strerror or error}") from None
    return count


def export_rows(session: Session, statuses: Collection[SubscriberStatus]) -> Iterator[list]:
    """One row per subscriber in id order, in EXPORT_COLUMNS order, read in batches."""
    last_id = 0
    while True:
        batch = session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.language,
                Subscriber.timezone,
                Subscriber.delivery_hour,
                Subscriber.include_replacements,
                Subscriber.tldr,
                Subscriber.frequency,
                Subscriber.weekday,
            )
            .where(Subscriber.id > last_id, Subscriber.status.in_(list(statuses)))
            .order_by(Subscriber.id)
            .limit(EXPORT_BATCH)
        ).all()
        if not batch:
            return
        keywords: dict[int, list[str]] = {row.id: [] for row in batch}
        for subscriber_id, text in session.execute(
            select(Keyword.subscriber_id, Keyword.text)
            .where(Keyword.subscriber_id.in_(list(keywords)))
            .order_by(Keyword.subscriber_id, Keyword.position)
        ):
            keywords[subscriber_id].append(text)
        for row in batch:
            yield [
                row.email,
                # One keyword line per line, as the sign-up form's text box has them.
                "\n".join(keywords[row.id]),
                row.language,
                row.timezone,
                "" if row.delivery_hour is None else row.delivery_hour,
                "true" if row.include_replacements else "false",
                "true" if row.tldr else "false",
                row.frequency,
                "" if row.weekday is None else WEEKDAY_NAMES[row.weekday],
            ]
        last_id = batch[-1].id
