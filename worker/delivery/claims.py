"""Claims on the delivery ledger: which rows are still to send, and taking them under a lease.

Called by worker/delivery/sending.py (the drain loop claims a batch, counts
the rows other workers hold, waits for their leases), worker/delivery/leases.py
(the heartbeat renews) and worker/delivery/dispatch.py (how many rows are left,
and giving up on rows whose worker keeps dying). A row goes queued -> sending
(claimed in a batch, with a lease); its outcome is worker/delivery/ledger.py's.

The lease is the only crash detector: `worker.delivery.leases.Heartbeat` renews a
live worker's claims every third of DELIVERY_LEASE_SECONDS on its own
connection, and a row whose lease lapsed is claimable by anyone. RQ's job
registry plays no part.
"""

import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select, union_all, update
from sqlalchemy.engine import Connection

from newsletter.db import utcnow
from newsletter.models import Delivery, DeliveryStatus, Keyword, Subscriber, SubscriberStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A claimed row with what rendering and sending it need."""

    id: int
    subscriber_id: int
    message_id: str
    sections: list
    attempts: int  # including this claim
    created_at: datetime
    email: str
    public_id: str
    status: SubscriberStatus
    language: str
    timezone: str
    include_replacements: bool
    keywords: tuple[str, ...]
    tldr: bool = False  # TL;DRs under the titles (worker/translation/tldr.py)
    # A weekly digest's first listing date (worker/delivery/weekly.py); None: the day's alone.
    first_listing_date: date | None = None


def worker_name() -> str:
    """Who holds a claim: host, process, and a random tag unique to this drain."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


def _due(now: datetime):
    """A queued row whose backoff (if any) is over."""
    return and_(
        Delivery.status == DeliveryStatus.QUEUED,
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
    )


def _lapsed(now: datetime, max_attempts: int):
    """A claimed row whose lease ran out: its worker died."""
    return and_(
        Delivery.status == DeliveryStatus.SENDING,
        Delivery.lease_expires_at < now,
        Delivery.attempts < max_attempts,
    )


def claimable(now: datetime, max_attempts: int):
    """Queued and due, or held under a lease that lapsed (its worker died).

    The one definition of "still to send": claims take only such rows, and
    dispatch queues drain jobs while there are any. A row whose worker died
    `max_attempts` times is left to `give_up_dead_claims`.
    """
    return or_(_due(now), _lapsed(now, max_attempts))


def claim_batch(
    connection: Connection,
    listing_date: date,
    claimer: str,
    *,
    size: int,
    lease: timedelta,
    max_attempts: int,
) -> list[Claim]:
    """Take up to `size` claimable rows of the day in one statement; return them with readers.

    PostgreSQL skips rows another worker is claiming (FOR UPDATE SKIP
    LOCKED); SQLite has a single writer, so the same statement is atomic there.
    One more query reads the batch's subscribers and keyword lines.
    """
    now = utcnow()

    # Two materialized CTEs, each an index range of (listing_date, status, id):
    # a scan of the day's rows would grow with every row already sent, and
    # PostgreSQL may re-run an IN (subquery) per row and claim too many.
    # Lapsed claims go first: a dead worker's rows are the oldest work.
    def locked(condition, name: str):
        return (
            select(Delivery.id)
            .where(Delivery.listing_date == listing_date, condition)
            .order_by(Delivery.id)
            .limit(size)
            .with_for_update(skip_locked=True)
            .cte(name)
            .prefix_with("MATERIALIZED")
        )

    lapsed, due = locked(_lapsed(now, max_attempts), "lapsed"), locked(_due(now), "due")
    chosen = union_all(select(lapsed.c.id), select(due.c.id)).subquery()
    candidates = select(chosen.c.id).limit(size)
    claimed = connection.execute(
        update(Delivery)
        .where(Delivery.id.in_(candidates))
        .values(
            status=DeliveryStatus.SENDING,
            claimed_by=claimer,
            claimed_at=now,
            lease_expires_at=now + lease,
            next_attempt_at=None,
            attempts=Delivery.attempts + 1,
        )
        .returning(
            Delivery.id,
            Delivery.subscriber_id,
            Delivery.message_id,
            Delivery.sections,
            Delivery.attempts,
            Delivery.created_at,
            Delivery.first_listing_date,
        )
    ).all()
    if not claimed:
        return []
    readers = _readers(connection, [row.subscriber_id for row in claimed])
    claims = []
    for row in sorted(claimed, key=lambda row: row.id):
        reader = readers.get(row.subscriber_id)
        if reader is None:  # the subscriber was deleted since dispatch (the row goes too)
            continue
        email, public_id, status, language, timezone, replacements, tldr, keywords = reader
        claims.append(
            Claim(
                id=row.id,
                subscriber_id=row.subscriber_id,
                message_id=row.message_id,
                sections=row.sections or [],
                attempts=row.attempts,
                created_at=row.created_at,
                email=email,
                public_id=public_id,
                status=status,
                language=language,
                timezone=timezone,
                include_replacements=replacements,
                keywords=tuple(keywords),
                tldr=tldr,
                first_listing_date=row.first_listing_date,
            )
        )
    return claims


def _readers(connection: Connection, subscriber_ids: Sequence[int]) -> dict[int, tuple]:
    """Each subscriber's address, status, settings and keyword lines, in one query."""
    rows = connection.execute(
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.public_id,
            Subscriber.status,
            Subscriber.language,
            Subscriber.timezone,
            Subscriber.include_replacements,
            Subscriber.tldr,
            Keyword.text,
        )
        .outerjoin(Keyword, Keyword.subscriber_id == Subscriber.id)
        .where(Subscriber.id.in_(subscriber_ids))
        .order_by(Subscriber.id, Keyword.position)
    )
    readers: dict[int, tuple] = {}
    for id_, email, public_id, status, language, timezone, replacements, tldr, keyword in rows:
        if id_ not in readers:
            readers[id_] = (email, public_id, status, language, timezone, replacements, tldr, [])
        if keyword is not None:
            readers[id_][-1].append(keyword)
    return readers


def renew(connection: Connection, claimer: str, lease: timedelta) -> int:
    """Extend every live claim of `claimer` by `lease` from now."""
    result = connection.execute(
        update(Delivery)
        .where(Delivery.claimed_by == claimer, Delivery.status == DeliveryStatus.SENDING)
        .values(lease_expires_at=utcnow() + lease)
    )
    return result.rowcount


def give_up_dead_claims(connection: Connection, listing_date: date, max_attempts: int) -> int:
    """Fail rows whose worker died `max_attempts` times (a message that kills workers)."""
    result = connection.execute(
        update(Delivery)
        .where(
            Delivery.listing_date == listing_date,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_expires_at < utcnow(),
            Delivery.attempts >= max_attempts,
        )
        .values(status=DeliveryStatus.FAILED, error="gave up: its sending worker died every time")
    )
    if result.rowcount:
        log.error(
            "%s: gave up on %d deliveries whose workers kept dying", listing_date, result.rowcount
        )
    return result.rowcount


def count_claimable(connection: Connection, listing_date: date, max_attempts: int) -> int:
    return connection.execute(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.listing_date == listing_date, claimable(utcnow(), max_attempts))
    ).scalar_one()


def count_held_by_others(connection: Connection, listing_date: date, claimer: str) -> int:
    """Rows of the day other live workers are sending right now."""
    return connection.execute(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.listing_date == listing_date,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_expires_at >= utcnow(),
            Delivery.claimed_by != claimer,
        )
    ).scalar_one()


def next_lease_expiry(connection: Connection, listing_date: date, claimer: str) -> datetime | None:
    """When the earliest live claim of another worker on the day would lapse, if any."""
    return connection.scalar(
        select(func.min(Delivery.lease_expires_at)).where(
            Delivery.listing_date == listing_date,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_expires_at >= utcnow(),
            Delivery.claimed_by != claimer,
        )
    )
