"""Exactly-once digest delivery: the ledger and the dispatcher.

Run by the RQ job `worker.jobs.dispatch_digests_job` (every scheduler poll) and
by `newsletter digest send|preview`. It owns the `deliveries` table: who is due
a digest, what each digest holds, making the rows and queueing the chunks that
worker/sending.py sends.

The ledger holds one row per (subscriber, listing date), made once by
`dispatch_digests` with its content (sections) and Message-ID fixed. A sender
claims a row with one conditional UPDATE before it talks to SMTP and marks it
sent right after, committing each step, so:
- a rerun, a retry or a second worker finds the row claimed or sent and skips it;
- a worker that dies leaves at most the row it was sending in `sending`; once
  its claim is older than DELIVERY_LEASE_SECONDS the next dispatch queues it
  again and it is resent with the same Message-ID (the one possible repeat).
Rows left `queued` (temporary SMTP failures, a chunk stopped by an unreachable
server) are queued again by the next dispatch; the scheduler's poll runs one
every 15 minutes.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from emails import RenderedEmail
from newsletter import db
from newsletter.db import utcnow
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import subscriber_links
from worker import calendar, digest, matching
from worker.mail import new_message_id
from worker.queue import enqueue
from worker.sending import (
    ChunkSummary,
    DigestRenderer,
    Sections,
    claimable,
    send_digest_chunk,
    wants_translation,
)

log = logging.getLogger(__name__)

# Rows per INSERT at dispatch (well under every backend's parameter limit).
_BATCH = 500


@dataclass
class DispatchSummary:
    """What one run of `dispatch_digests` did."""

    listing_date: date
    ready: bool = True  # False: the day is not ingested yet, nothing was done
    held: int = 0  # subscribers waiting for their delivery hour or the translation
    queued: int = 0  # rows this run made to be sent
    skipped: int = 0  # rows this run made as skipped (no matching paper)
    given_up: int = 0  # rows whose worker died DELIVERY_MAX_ATTEMPTS times
    chunks: int = 0  # chunks enqueued (or sent, with send_now)
    sending: ChunkSummary = field(default_factory=ChunkSummary)  # with send_now only


# --- when a subscriber is due (pure) ---


def release_instant(listing_date: date, timezone: str, delivery_hour: int | None) -> datetime:
    """The first `delivery_hour`:00 local time at or after the day's announcement.

    Without a delivery hour a digest goes as soon as it is ready, i.e. from
    the announcement on.
    """
    announced = calendar.announcement_instant(listing_date)
    if delivery_hour is None:
        return announced
    zone = digest.subscriber_zone(timezone)
    local_day = announced.astimezone(zone).date()
    candidate = datetime.combine(local_day, time(delivery_hour), zone)
    if candidate < announced:
        candidate = datetime.combine(local_day + timedelta(days=1), time(delivery_hour), zone)
    return candidate


def is_due(
    subscriber: Subscriber, day: ListingDay, now: datetime, translation_deadline: timedelta
) -> bool:
    """Whether `subscriber`'s digest of a complete `day` may be made at `now`."""
    if now < release_instant(day.listing_date, subscriber.timezone, subscriber.delivery_hour):
        return False
    if wants_translation(subscriber.language) and day.translated_at is None:
        # Never held indefinitely: past the deadline it goes without the missing translations.
        return now >= day.completed_at + translation_deadline
    return True


# --- what a subscriber gets ---


def compute_sections(
    subscribers: Sequence[Subscriber], papers: dict[str, Paper]
) -> dict[int, Sections]:
    """Each subscriber's sections; every distinct keyword line is matched once."""
    lines = sorted({line for subscriber in subscribers for line in subscriber.keyword_lines})
    matches = matching.match_papers(list(papers.values()), lines) if lines and papers else {}
    return {
        subscriber.id: digest.assign_sections(
            subscriber.keyword_lines, matches, papers, subscriber.include_replacements
        )
        for subscriber in subscribers
    }


def unique_paper_count(sections: Iterable[tuple[str, list[str]]]) -> int:
    return len({arxiv_id for _keyword, ids in sections for arxiv_id in ids})


# --- dispatch ---


def dispatch_digests(
    listing_date: date,
    now: datetime | None = None,
    *,
    send_now: bool = False,
    confirmed_before: datetime | None = None,
) -> DispatchSummary:
    """Make the day's missing delivery rows and queue every row still to send.

    Idempotent and safe to run concurrently: rows are inserted with ON
    CONFLICT DO NOTHING and sending claims each row. With `send_now` the
    chunks are sent in this process (the CLI) instead of enqueued. With
    `confirmed_before`, only subscribers confirmed before then get a new row
    (a past day goes to those who were subscribed while it was current).
    """
    config = current_app.config
    session = db.session()
    now = now or utcnow()
    summary = DispatchSummary(listing_date)
    day = session.get(ListingDay, listing_date)
    if day is None or day.completed_at is None:
        summary.ready = False
        log.info("listing date %s is not complete; no digests yet", listing_date)
        return summary

    deadline = timedelta(minutes=config["TRANSLATION_DEADLINE_MINUTES"])
    if config["TRANSLATION_BACKEND"] == "none":
        deadline = timedelta(0)  # no translation is coming: nothing to wait for
    without_row = ~(
        select(Delivery.id)
        .where(Delivery.subscriber_id == Subscriber.id, Delivery.listing_date == listing_date)
        .exists()
    )
    eligible = [Subscriber.status == SubscriberStatus.CONFIRMED, without_row]
    if confirmed_before is not None:
        eligible.append(Subscriber.confirmed_at < confirmed_before)
    waiting = session.scalars(
        select(Subscriber)
        .where(*eligible)
        .options(selectinload(Subscriber.keywords))
        .order_by(Subscriber.id)
    ).all()
    due = [s for s in waiting if is_due(s, day, now, deadline)]
    summary.held = len(waiting) - len(due)
    if due:
        sections = compute_sections(due, digest.load_day(session, listing_date))
        summary.queued, summary.skipped = _insert_deliveries(session, listing_date, due, sections)
    session.commit()

    lease = timedelta(seconds=config["DELIVERY_LEASE_SECONDS"])
    summary.given_up = _give_up_on_dead_claims(session, listing_date, now - lease)
    pending = _pending_ids(session, listing_date, now - lease)
    session.commit()
    for job_id, ids in chunk_ids(listing_date, pending, config["DIGEST_CHUNK_SIZE"]):
        summary.chunks += 1
        if send_now:
            summary.sending.add(send_digest_chunk(listing_date.isoformat(), ids))
        else:
            # The RQ entry point, imported late to keep the import graph jobs -> delivery.
            from worker import jobs

            enqueue(jobs.send_digest_chunk, listing_date.isoformat(), ids, job_id=job_id)
    log.info(
        "dispatch %s: %d queued, %d skipped (no papers), %d held, %d chunk(s)",
        listing_date,
        summary.queued,
        summary.skipped,
        summary.held,
        summary.chunks,
    )
    return summary


def _insert_deliveries(
    session: Session,
    listing_date: date,
    subscribers: Sequence[Subscriber],
    sections: dict[int, Sections],
) -> tuple[int, int]:
    """Insert the rows that do not exist yet; return how many this call made (queued, skipped)."""
    config = current_app.config
    rows = []
    for subscriber in subscribers:
        own = sections[subscriber.id]
        count = unique_paper_count(own)
        queued = bool(count) or config["DIGEST_SEND_EMPTY"]
        rows.append(
            {
                "subscriber_id": subscriber.id,
                "listing_date": listing_date,
                "status": DeliveryStatus.QUEUED if queued else DeliveryStatus.SKIPPED,
                "message_id": new_message_id(config["MAIL_FROM"]),
                "sections": [[keyword, ids] for keyword, ids in own],
                "paper_count": count,
                "attempts": 0,
                "created_at": utcnow(),
                "error": None if queued else "no matching papers",
            }
        )
    dialect = session.get_bind().dialect.name
    inserts = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    if dialect not in inserts:
        raise NotImplementedError(f"deliveries need INSERT ... ON CONFLICT; {dialect} has none")
    table = Delivery.__table__
    made = []
    for start in range(0, len(rows), _BATCH):
        # Another dispatcher may have made some of these rows meanwhile: those
        # are left alone, and RETURNING names only the rows made here.
        statement = inserts[dialect](table).on_conflict_do_nothing().returning(table.c.status)
        made += [status for (status,) in session.execute(statement, rows[start : start + _BATCH])]
    queued = sum(DeliveryStatus(status) is DeliveryStatus.QUEUED for status in made)
    return queued, len(made) - queued


def _give_up_on_dead_claims(session: Session, listing_date: date, cutoff: datetime) -> int:
    """Fail rows whose workers died DELIVERY_MAX_ATTEMPTS times (a message that kills them)."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.listing_date == listing_date,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_at < cutoff,
            Delivery.attempts >= current_app.config["DELIVERY_MAX_ATTEMPTS"],
        )
        .values(status=DeliveryStatus.FAILED, error="gave up: its sending worker died every time")
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount:
        log.error(
            "%s: gave up on %d deliveries whose workers kept dying", listing_date, result.rowcount
        )
    return result.rowcount


def _pending_ids(session: Session, listing_date: date, cutoff: datetime) -> list[int]:
    query = select(Delivery.id).where(Delivery.listing_date == listing_date, claimable(cutoff))
    return list(session.scalars(query.order_by(Delivery.id)))


def chunk_ids(listing_date: date, ids: Sequence[int], size: int) -> list[tuple[str, list[int]]]:
    """Split ids into chunks by id range, each with a stable job id.

    The range (id // size) names the chunk, so a dispatch that runs while an
    earlier job for the same range is still queued or running is a no-op for
    that range instead of a second job racing the first.
    """
    size = max(1, size)
    chunks: dict[int, list[int]] = {}
    for delivery_id in ids:
        chunks.setdefault(delivery_id // size, []).append(delivery_id)
    day = listing_date.isoformat()
    return [(f"digest-{day}-{key}", chunk) for key, chunk in sorted(chunks.items())]


# --- operator helpers (CLI) ---


def preview_digest(
    session: Session, config: dict, subscriber: Subscriber, listing_date: date
) -> RenderedEmail:
    """`subscriber`'s digest of `listing_date` as it would be (or was) sent; sends nothing."""
    delivery = session.scalar(
        select(Delivery).where(
            Delivery.subscriber_id == subscriber.id, Delivery.listing_date == listing_date
        )
    )
    renderer = DigestRenderer(session, config, listing_date)
    if delivery is not None and delivery.sections is not None:
        sections = delivery.sections
    else:
        # No row yet: what dispatch would fix for them now.
        sections = compute_sections([subscriber], renderer.papers)[subscriber.id]
    links = subscriber_links(config, subscriber.public_id, listing_date)
    now = utcnow().replace(second=0, microsecond=0)
    return renderer.render(subscriber, sections, now, links)
