"""RQ jobs: plain importable functions of ids and dates, idempotent.

A worker runs each job inside an app context (see `newsletter worker`); without
Redis, `worker.queue.enqueue` runs them in-process.
Each job is `@logged_job`: its log lines carry its RQ job id and the listing
date or subscriber id it was given (shown with LOG_FORMAT=json).
"""

from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime

import emails
from newsletter import db
from newsletter.config import settings
from newsletter.locales import subscriber_locale
from newsletter.logging_setup import logged_job
from newsletter.models import ListingDay, Subscriber, SubscriberStatus
from newsletter.tokens import confirm_url, subscriber_links
from worker import calendar
from worker.bounces.effects import apply_report
from worker.bounces.mailbox import process_mailbox
from worker.bounces.parse import report_from_dict
from worker.delivery import sending
from worker.delivery.dispatch import DRAIN_BUDGET_SECONDS, dispatch_digests
from worker.delivery.mail import Mailer
from worker.delivery.messages import build_message, new_message_id
from worker.queue import enqueue
from worker.translation.job import translate_day

# --- subscriptions ---


@logged_job
def send_confirmation(subscriber_id: int) -> None:
    """Email the double opt-in link to a subscriber who has not confirmed yet."""
    session = db.session()
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status is not SubscriberStatus.UNCONFIRMED:
        return
    config = settings()
    rendered = emails.render(
        "confirm",
        subscriber_locale(subscriber.language),
        keywords=subscriber.keyword_lines,
        confirm_url=confirm_url(config, subscriber.public_id),
    )
    _send_account_email(subscriber, rendered)
    subscriber.confirmation_sent_at = db.utcnow()
    session.commit()


@logged_job
def send_manage_link(subscriber_id: int) -> None:
    """Email a known address its manage link (a repeated sign-up)."""
    subscriber = db.session().get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status is SubscriberStatus.BLOCKLISTED:
        return
    links = subscriber_links(settings(), subscriber.public_id)
    locale = subscriber_locale(subscriber.language)
    _send_account_email(subscriber, emails.render("already_subscribed", locale, **links))


def _send_account_email(subscriber: Subscriber, rendered: emails.RenderedEmail) -> None:
    send_account_email(subscriber.email, rendered)


def send_account_email(to: str, rendered: emails.RenderedEmail) -> None:
    """Send one account email (not a digest): no list headers, Auto-Submitted.

    Also the erasure's last email (newsletter/erased_notice.py), to an address no row holds.
    """
    config = settings()
    message = build_message(
        sender=config.MAIL_FROM,
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=new_message_id(config.MAIL_FROM),
        headers={"Auto-Submitted": "auto-generated"},
    )
    with Mailer(config) as mailer:
        mailer.send(message)


# --- ingest: the scheduled poll itself is worker.schedule.poll ---


# --- translation ---


@logged_job
def translate_listing_date(listing_date_iso: str) -> str:
    """Translate what the day's bilingual digests need, once; mark the day translated."""

    report = translate_day(db.session(), settings(), date.fromisoformat(listing_date_iso))
    return str(report)


# --- digest ---


@logged_job
def dispatch_digests_job(listing_date_iso: str, confirmed_before_iso: str | None = None) -> dict:
    """Make the day's missing deliveries and queue what is left to send (run by every poll)."""

    confirmed_before = (
        datetime.fromisoformat(confirmed_before_iso) if confirmed_before_iso else None
    )
    summary = dispatch_digests(
        date.fromisoformat(listing_date_iso), confirmed_before=confirmed_before
    )
    return asdict(summary)


@logged_job
def dispatch_confirmed_digest(subscriber_id: int, now_iso: str | None = None) -> dict | None:
    """Make and queue a just-confirmed subscriber's digest of the date the poll would give them.

    Queued by the confirm view, so a subscriber who confirms after the day's
    dispatch need not wait for the next poll. The row goes through the same
    ledger (ON CONFLICT DO NOTHING, claims), so a poll's dispatch racing this
    one still makes one row and sends one email. Not due yet (delivery hour,
    translation wait): nothing now, the poll sends it later.
    """
    session = db.session()
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status is not SubscriberStatus.CONFIRMED:
        return None
    now = datetime.fromisoformat(now_iso) if now_iso else db.utcnow()
    listing_date = listing_date_for_subscriber(now, subscriber.confirmed_at, _is_complete)
    if listing_date is None:
        return None
    summary = dispatch_digests(listing_date, now, subscriber_ids=[subscriber_id])
    return asdict(summary)


def listing_date_for_subscriber(
    now: datetime, confirmed_at: datetime | None, is_complete: Callable[[date], bool]
) -> date | None:
    """The latest complete listing date `worker.schedule.poll` would dispatch to a subscriber.

    The poll gives the due date to everyone confirmed, and the previous date
    only to those confirmed before the due date took over (its feed rebuild).
    """
    due = calendar.due_listing_date(now)
    if is_complete(due):
        return due
    previous = calendar.previous_listing_date(due)
    took_over = calendar.feed_rebuild_instant(due)
    if is_complete(previous) and confirmed_at is not None and confirmed_at < took_over:
        return previous
    return None


def _is_complete(listing_date: date) -> bool:
    day = db.session().get(ListingDay, listing_date)
    return day is not None and day.completed_at is not None


@logged_job
def drain_deliveries(listing_date_iso: str) -> dict:
    """Send the day's claimable deliveries, batch by batch, until none is left.

    Queued without a job id by every dispatch: a duplicate finds nothing to
    claim. A drain that uses its time budget queues its successor.
    """
    summary = sending.drain_day(listing_date_iso, time_budget=DRAIN_BUDGET_SECONDS)
    if summary.out_of_time:
        enqueue(drain_deliveries, listing_date_iso)
    return asdict(summary)


@logged_job
def send_digest_chunk(listing_date_iso: str, delivery_ids: list[int]) -> dict:
    """A job queued before the ledger was drained in batches: drains the day instead."""
    return drain_deliveries(listing_date_iso)


# --- late bounces and complaints (worker/bounces/) ---


@logged_job
def poll_bounces() -> dict:
    """Apply the unseen reports in BOUNCE_IMAP_URL's mailbox; queued by every poll when set."""
    config = settings()
    if not config.BOUNCE_IMAP_URL:
        return {}
    return process_mailbox(db.session(), config.BOUNCE_IMAP_URL, config.BOUNCE_LIMIT)


@logged_job
def apply_bounce_reports(reports: list[dict]) -> dict:
    """Apply the reports of a relay's webhook request (queued by newsletter/bounce_webhooks.py)."""
    session = db.session()
    outcomes: dict[str, int] = {}
    for values in reports:
        report = report_from_dict(values)
        # The relay's own word: its events are about mail we sent through it.
        outcome = apply_report(session, report, settings().BOUNCE_LIMIT, trust_recipient=True)
        session.commit()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
