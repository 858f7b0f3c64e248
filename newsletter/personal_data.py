"""A subscriber's own data: all of it as one JSON document, and erasing it.

Called by the manage page's "Download my data" and "Erase me" views
(newsletter/my_data.py) and by `newsletter subscribers delete`
(newsletter/subscriber_admin.py). No Flask here: a session in, rows read or
changed, nothing committed (the caller owns the unit of work).

Erasing keeps only what names no one: the erased subscriber's delivery rows
that reached an outcome (sent, failed, skipped) stay, detached (subscriber_id
NULL) and stripped of their content (keyword lines, error text, claim), so the
digests counted per listing date and status, the send times and the bounces
per day that /admin, /metrics and `newsletter status` show stay right. Rows
not sent yet go: nobody is left to send them to. Everything else that refers
to the subscriber (keywords, and any other table keyed by subscribers.id) is
deleted with their row; their tokens name a public_id no row has any more.
"""

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, FromClause, Table, delete, select, update
from sqlalchemy.orm import Session

from newsletter.models import Base, Delivery, DeliveryStatus, Subscriber, SubscriberStatus

EXPORT_FORMAT = "arxiv-digest personal data, version 1"
# Internal keys: they identify the row to us, and tell the reader nothing.
_HIDDEN_SUBSCRIBER_COLUMNS = {"id", "public_id", "email_key"}
# The ledger's bookkeeping: which worker held a row, and until when.
_HIDDEN_DELIVERY_COLUMNS = {
    "id",
    "subscriber_id",
    "message_id",
    "claimed_by",
    "claimed_at",
    "lease_expires_at",
    "next_attempt_at",
}
# Rows no digest went out for yet: erased with the subscriber.
UNSENT = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
# What an erased subscriber's kept rows lose: all that came from them or their mail.
_SCRUBBED = {
    "sections": None,
    "error": None,
    "claimed_by": None,
    "claimed_at": None,
    "lease_expires_at": None,
    "next_attempt_at": None,
}


def plain(value: Any) -> Any:
    """A column's value as JSON: enums by their word, instants and dates in ISO 8601."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _columns(row: Any, table: FromClause, hidden: set[str]) -> dict[str, Any]:
    # Every column but the hidden ones: a setting added later is exported too.
    return {c.key: plain(getattr(row, c.key)) for c in table.columns if c.key not in hidden}


def export_data(session: Session, subscriber: Subscriber, now: datetime) -> dict[str, Any]:
    """Everything stored about `subscriber`: address, settings, keyword lines, digests."""
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.listing_date, Delivery.id)
    )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "subscriber": _columns(subscriber, Subscriber.__table__, _HIDDEN_SUBSCRIBER_COLUMNS),
        "keywords": subscriber.keyword_lines,
        "deliveries": [
            _columns(row, Delivery.__table__, _HIDDEN_DELIVERY_COLUMNS) for row in deliveries
        ],
    }


@dataclass(frozen=True)
class Erased:
    """What one erasure did, and where its last email goes."""

    email: str
    language: str
    # False for a suppressed address (bounces, complaints): it gets no last email.
    may_mail: bool
    kept: int
    dropped: int


def erase_subscriber(session: Session, subscriber: Subscriber) -> Erased | None:
    """Erase `subscriber` (not committed); None if a concurrent erasure already did.

    Idempotent: the subscriber row is deleted last, and a second erasure
    racing the first finds no row to delete and reports None, so the caller
    sends no second email.
    """
    subscriber_id = subscriber.id
    email, language = subscriber.email, subscriber.language
    may_mail = subscriber.status is not SubscriberStatus.BLOCKLISTED
    mine = Delivery.subscriber_id == subscriber_id
    dropped = _rowcount(
        session,
        delete(Delivery)
        .where(mine, Delivery.status.in_(UNSENT))
        .execution_options(synchronize_session=False),
    )
    kept = _rowcount(
        session,
        update(Delivery)
        .where(mine)
        .values(subscriber_id=None, **_SCRUBBED)
        .execution_options(synchronize_session=False),
    )
    for table, column in _tables_naming_subscribers():
        session.execute(table.delete().where(column == subscriber_id))
    gone = _rowcount(
        session,
        delete(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .execution_options(synchronize_session=False),
    )
    session.expunge(subscriber)
    if gone != 1:
        return None
    return Erased(email, language, may_mail, kept, dropped)


def _rowcount(session: Session, statement: Any) -> int:
    # An UPDATE or DELETE answers a cursor result, whose rowcount the Result type hides.
    return cast(CursorResult, session.execute(statement)).rowcount


def _tables_naming_subscribers() -> list[tuple[Table, Any]]:
    """Every (table, column) whose foreign key points at subscribers.id, but the ledger's."""
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name == Delivery.__tablename__:
            continue
        for key in table.foreign_keys:
            if key.column.table.name == Subscriber.__tablename__:
                found.append((table, key.parent))
    return found
