"""What a parsed report does to our subscribers: match it to a delivery, then apply it.

Called by the `poll_bounces` and `apply_bounce_reports` jobs (worker/jobs.py)
and `newsletter bounces poll`; the caller commits after each report.

Matching: by the original Message-ID (`Delivery.message_id` is unique), else
by a recipient address -> subscriber (and, for a hard bounce, their latest
sent digest). A mailbox report whose Message-ID is not one of our digests is
about another message (an account email, or backscatter: a bounce of spam
that forged our sender address), so its recipient is not taken as a reader's;
a relay's webhook (`trust_recipient`) speaks only of mail we sent through it.
Effects, each idempotent so a report read twice counts once:

- hard bounce: the delivery is marked `bounced_at` and counts toward
  BOUNCE_LIMIT by ledger.record_bounce's rule (suppressed at the limit). A
  delivery already marked, or one that failed at sending (its 5xx was counted
  then), counts nothing.
- soft bounce: logged only; the relay retries it.
- complaint: the subscriber is unsubscribed at once, as by one-click unsubscribe.
"""

import logging

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from worker.bounces.parse import Kind, Report
from worker.delivery import ledger

log = logging.getLogger(__name__)

# Outcomes `apply_report` returns (counted in the poll's summary).
COUNTED = "counted"
SUPPRESSED = "suppressed"
ALREADY_COUNTED = "already counted"
SOFT = "soft, logged"
UNSUBSCRIBED = "unsubscribed"
ALREADY_UNSUBSCRIBED = "already unsubscribed"
UNMATCHED = "unmatched"
NO_DELIVERY = "no sent digest"


def apply_report(
    session: Session, report: Report, bounce_limit: int, trust_recipient: bool = False
) -> str:
    """Apply one report (not committed); the outcome, or the report's kind if it is not one."""
    if report.kind in (Kind.NONE, Kind.UNKNOWN):
        return report.kind.value
    delivery = find_delivery(session, report.message_id)
    if delivery is not None and delivery.subscriber_id is None:
        # A digest of a reader who erased themselves (newsletter/personal_data.py):
        # nobody to count it against, even a new subscriber at the same address.
        log.info("%s report for an erased reader's digest %s", report.kind.value, delivery.id)
        return UNMATCHED
    subscriber = delivery.subscriber if delivery else None
    if subscriber is None and (trust_recipient or report.message_id is None):
        subscriber = find_subscriber(session, report.recipients)
    if subscriber is None:
        log.info(
            "%s report for %s (%s) matches none of our deliveries or subscribers",
            report.kind.value,
            ", ".join(report.recipients) or "no recipient",
            report.message_id or "no Message-ID",
        )
        return UNMATCHED
    if report.kind is Kind.SOFT:
        log.info(
            "soft bounce for subscriber %d (%s %s); the relay retries it",
            subscriber.id,
            report.status or "",
            report.detail,
        )
        return SOFT
    if report.kind is Kind.COMPLAINT:
        return _unsubscribe(subscriber, report)
    if delivery is None:
        delivery = latest_sent_delivery(session, subscriber.id)
        if delivery is None:
            log.info("hard bounce for subscriber %d, who was sent no digest", subscriber.id)
            return NO_DELIVERY
    return _count_hard_bounce(session, delivery, subscriber.id, bounce_limit, report)


def find_delivery(session: Session, message_id: str | None) -> Delivery | None:
    if not message_id:
        return None
    return session.scalar(select(Delivery).where(Delivery.message_id == message_id))


def find_subscriber(session: Session, recipients: tuple[str, ...]) -> Subscriber | None:
    """The subscriber at the first of `recipients` that is one (addresses compare casefolded)."""
    for address in recipients:
        found = session.scalar(select(Subscriber).where(Subscriber.email_key == address.casefold()))
        if found is not None:
            return found
    return None


def latest_sent_delivery(session: Session, subscriber_id: int) -> Delivery | None:
    """The subscriber's latest sent digest: the one a bounce without our Message-ID is about.

    Always the latest (marked or not), so the same report read twice finds the
    same row and counts once.
    """
    return session.scalar(
        select(Delivery)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.status == DeliveryStatus.SENT)
        .order_by(Delivery.listing_date.desc(), Delivery.id.desc())
        .limit(1)
    )


def _count_hard_bounce(
    session: Session, delivery: Delivery, subscriber_id: int, limit: int, report: Report
) -> str:
    # One conditional UPDATE: of two workers reading the same report, one marks the row.
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.bounced_at.is_(None),
        )
        .values(bounced_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        log.info(
            "hard bounce for delivery %d already counted (%s)", delivery.id, delivery.status.value
        )
        return ALREADY_COUNTED
    suppressed = ledger.record_bounce(session.connection(), subscriber_id, limit)
    log.warning(
        "hard bounce for delivery %d (subscriber %d, %s): %s %s%s",
        delivery.id,
        subscriber_id,
        delivery.listing_date,
        report.status or "",
        report.detail,
        "; suppressed after repeated hard bounces" if suppressed else "",
    )
    return SUPPRESSED if suppressed else COUNTED


def _unsubscribe(subscriber: Subscriber, report: Report) -> str:
    if subscriber.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BLOCKLISTED):
        log.info("complaint from subscriber %d, already %s", subscriber.id, subscriber.status.value)
        return ALREADY_UNSUBSCRIBED
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = utcnow()
    log.warning(
        "complaint (%s) from subscriber %d: unsubscribed", report.status or "abuse", subscriber.id
    )
    return UNSUBSCRIBED
