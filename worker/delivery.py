"""Exactly-once digest delivery: the ledger, the dispatcher and the chunk sender.

Run by the RQ jobs in worker/jobs.py (`dispatch_digests_job`, `send_digest_chunk`)
and by `newsletter digest send|preview`. It owns the `deliveries` table.

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

import json
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import and_, or_, select, update
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
    Translation,
    TranslationStatus,
)
from newsletter.tokens import subscriber_links
from worker import calendar, digest, matching
from worker.mail import (
    Mailer,
    PermanentFailure,
    SetupFailure,
    TemporaryFailure,
    build_digest_message,
    new_message_id,
)
from worker.queue import enqueue

log = logging.getLogger(__name__)

Sections = list[tuple[str, list[str]]]

# Rows per INSERT or IN (...) at dispatch (well under every backend's parameter limit).
_BATCH = 500
# Longest error text kept on a row.
_ERROR_MAX = 2000


@dataclass
class ChunkSummary:
    """What one run of `send_digest_chunk` did."""

    sent: int = 0
    skipped: int = 0  # unsubscribed since dispatch
    failed: int = 0  # hard bounces, unrenderable rows, temporary failures given up on
    deferred: int = 0  # temporary failures left queued for the next dispatch
    not_claimed: int = 0  # already done, or being sent by another worker
    stopped: str | None = None  # why the chunk stopped early, if it did

    def add(self, other: "ChunkSummary") -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.failed += other.failed
        self.deferred += other.deferred
        self.not_claimed += other.not_claimed
        self.stopped = self.stopped or other.stopped


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


def subscriber_zone(name: str) -> ZoneInfo:
    """The subscriber's timezone; UTC if the name is unknown (validated at sign-up)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        log.warning("unknown timezone %r; using UTC", name)
        return ZoneInfo("UTC")


def release_instant(listing_date: date, timezone: str, delivery_hour: int | None) -> datetime:
    """The first `delivery_hour`:00 local time at or after the day's announcement.

    Without a delivery hour a digest goes as soon as it is ready, i.e. from
    the announcement on.
    """
    announced = calendar.announcement_instant(listing_date)
    if delivery_hour is None:
        return announced
    zone = subscriber_zone(timezone)
    local_day = announced.astimezone(zone).date()
    candidate = datetime.combine(local_day, time(delivery_hour), zone)
    if candidate < announced:
        candidate = datetime.combine(local_day + timedelta(days=1), time(delivery_hour), zone)
    return candidate


def wants_translation(language: str) -> bool:
    return "+" in language


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


def load_translations(
    session: Session, papers: dict[str, Paper], language: str
) -> dict[str, Translation]:
    """The finished translations of exactly the versions in `papers`, by arXiv id."""
    wanted = {(p.arxiv_id, p.version) for p in papers.values()}
    ids = sorted(papers)
    found: dict[str, Translation] = {}
    for start in range(0, len(ids), _BATCH):
        rows = session.scalars(
            select(Translation).where(
                Translation.arxiv_id.in_(ids[start : start + _BATCH]),
                Translation.language == language,
                Translation.status == TranslationStatus.DONE,
            )
        )
        found.update({t.arxiv_id: t for t in rows if (t.arxiv_id, t.version) in wanted})
    return found


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


def _claimable(cutoff: datetime):
    """Queued, or claimed before `cutoff` by a worker that never finished (it died)."""
    return or_(
        Delivery.status == DeliveryStatus.QUEUED,
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < cutoff),
    )


def _pending_ids(session: Session, listing_date: date, cutoff: datetime) -> list[int]:
    query = select(Delivery.id).where(Delivery.listing_date == listing_date, _claimable(cutoff))
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


# --- the ledger's state changes, each committed at once ---


def worker_name() -> str:
    """Who holds a claim: host, process, and a random tag unique to this chunk run."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


def claim_delivery(
    session: Session, delivery_id: int, claimer: str, now: datetime, lease: timedelta
) -> bool:
    """Atomically take a row for sending; False if it is done or another worker holds it."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, _claimable(now - lease))
        .values(
            status=DeliveryStatus.SENDING,
            claimed_by=claimer,
            claimed_at=now,
            attempts=Delivery.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def _finish(session: Session, delivery_id: int, claimer: str, **values) -> None:
    """Record the outcome of a claimed row, unless the claim was lost meanwhile."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == claimer,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        log.warning("delivery %d: claim lost before its outcome was recorded", delivery_id)
    session.commit()


def _record_bounce(session: Session, subscriber_id: int, limit: int) -> bool:
    """Count a hard bounce; suppress the subscriber at `limit`. True if suppressed now."""
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(bounce_count=Subscriber.bounce_count + 1)
        .execution_options(synchronize_session=False)
    )
    count = session.scalar(select(Subscriber.bounce_count).where(Subscriber.id == subscriber_id))
    suppressed = False
    if count >= limit:
        result = session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, Subscriber.status == SubscriberStatus.CONFIRMED)
            .values(status=SubscriberStatus.BLOCKLISTED)
            .execution_options(synchronize_session=False)
        )
        suppressed = result.rowcount == 1
    session.commit()
    return suppressed


# --- rendering and sending ---


class DigestRenderer:
    """Renders a chunk's digests, sharing one render among identical digests.

    The day's papers and translations are loaded once per chunk, on first use.
    """

    def __init__(self, session: Session, config: dict, listing_date: date):
        self.session = session
        self.config = config
        self.listing_date = listing_date
        self._papers: dict[str, Paper] | None = None
        self._translations: dict[str, Translation] | None = None
        self._shared: dict[tuple, RenderedEmail] = {}

    @property
    def papers(self) -> dict[str, Paper]:
        if self._papers is None:
            self._papers = digest.load_day(self.session, self.listing_date)
        return self._papers

    def translations(self, language: str) -> dict[str, Translation]:
        if not wants_translation(language):
            return {}
        if self._translations is None:
            target = self.config["TRANSLATION_LANGUAGE"]
            self._translations = load_translations(self.session, self.papers, target)
        return self._translations

    def render(
        self,
        subscriber: Subscriber,
        sections: Sections,
        generated_at: datetime,
        links: dict[str, str],
    ) -> RenderedEmail:
        """`subscriber`'s digest with their own `links`."""
        # A paper re-announced on a later date moves there; drop what left this one.
        sections = [(kw, [i for i in ids if i in self.papers]) for kw, ids in sections]
        sections = [(kw, ids) for kw, ids in sections if ids]
        keywords = tuple(subscriber.keyword_lines)
        language, timezone = subscriber.language, subscriber.timezone
        key = (keywords, language, timezone, json.dumps(sections), generated_at)
        shared = self._shared.get(key)
        if shared is None:
            shared = digest.render_digest(
                listing_date=self.listing_date,
                sections=sections,
                papers=self.papers,
                translations=self.translations(language),
                language=language,
                timezone=timezone,
                keywords=list(keywords),
                generated_at=generated_at,
                links=digest.PLACEHOLDER_LINKS,
                max_per_keyword=self.config["DIGEST_MAX_PER_KEYWORD"],
                target_language=self.config["TRANSLATION_LANGUAGE"],
            )
            self._shared[key] = shared
        return digest.personalize(shared, links)

    def message(self, delivery: Delivery, subscriber: Subscriber) -> EmailMessage:
        """The MIME message of one delivery, with its stored Message-ID."""
        # The dispatch minute, not the send time: a resend after a crash is the
        # same digest, and digests dispatched together share a render.
        generated_at = delivery.created_at.replace(second=0, microsecond=0)
        links = subscriber_links(self.config, subscriber.public_id, self.listing_date)
        sections = [(kw, list(ids)) for kw, ids in delivery.sections or []]
        rendered = self.render(subscriber, sections, generated_at, links)
        return build_digest_message(
            self.config,
            to=subscriber.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=delivery.message_id,
            one_click_url=links["one_click_url"],
        )


def send_digest_chunk(
    listing_date_iso: str, delivery_ids: list[int], claimer: str | None = None
) -> ChunkSummary:
    """Send the given deliveries over one SMTP connection, claiming each first."""
    config = current_app.config
    session = db.session()
    listing_date = date.fromisoformat(listing_date_iso)
    claimer = claimer or worker_name()
    lease = timedelta(seconds=config["DELIVERY_LEASE_SECONDS"])
    renderer = DigestRenderer(session, config, listing_date)
    summary = ChunkSummary()
    with Mailer(config) as mailer:
        for delivery_id in delivery_ids:
            if not claim_delivery(session, delivery_id, claimer, utcnow(), lease):
                summary.not_claimed += 1
                continue
            _send_claimed(session, mailer, renderer, delivery_id, claimer, summary)
            if summary.stopped:
                log.error(
                    "chunk of %s stopped at delivery %d; the rest stay queued for the next "
                    "dispatch: %s",
                    listing_date_iso,
                    delivery_id,
                    summary.stopped,
                )
                break
    log.info(
        "chunk of %s: %d sent, %d skipped, %d failed, %d deferred, %d already taken",
        listing_date_iso,
        summary.sent,
        summary.skipped,
        summary.failed,
        summary.deferred,
        summary.not_claimed,
    )
    return summary


def _send_claimed(
    session: Session,
    mailer: Mailer,
    renderer: DigestRenderer,
    delivery_id: int,
    claimer: str,
    summary: ChunkSummary,
) -> None:
    """Render, send and record one claimed delivery; count the outcome in `summary`."""
    config = current_app.config
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None:  # deleted with its subscriber since the claim
        return
    subscriber = session.get(Subscriber, delivery.subscriber_id, populate_existing=True)
    if subscriber.status is not SubscriberStatus.CONFIRMED:
        left = f"subscriber {subscriber.status.value}"
        _finish(session, delivery_id, claimer, status=DeliveryStatus.SKIPPED, error=left)
        summary.skipped += 1
        return
    try:
        message = renderer.message(delivery, subscriber)
    except Exception as error:
        # One digest that cannot be rendered must not hold up the rest.
        log.exception("delivery %d: rendering failed", delivery_id)
        session.rollback()
        error_text = f"render failed: {error!r}"[:_ERROR_MAX]
        _finish(session, delivery_id, claimer, status=DeliveryStatus.FAILED, error=error_text)
        summary.failed += 1
        return
    session.commit()  # no transaction stays open during network I/O
    try:
        mailer.send(message)
    except PermanentFailure as failure:
        log.warning("delivery %d refused: %s", delivery_id, failure.reply)
        error_text = failure.reply[:_ERROR_MAX]
        _finish(session, delivery_id, claimer, status=DeliveryStatus.FAILED, error=error_text)
        if _record_bounce(session, subscriber.id, config["BOUNCE_LIMIT"]):
            log.warning("subscriber %d suppressed after repeated hard bounces", subscriber.id)
        summary.failed += 1
        return
    except (TemporaryFailure, SetupFailure) as failure:
        gave_up = delivery.attempts >= config["DELIVERY_MAX_ATTEMPTS"]
        status = DeliveryStatus.FAILED if gave_up else DeliveryStatus.QUEUED
        _finish(
            session,
            delivery_id,
            claimer,
            status=status,
            claimed_by=None,
            claimed_at=None,
            error=failure.reply[:_ERROR_MAX],
        )
        if gave_up:
            summary.failed += 1
        else:
            summary.deferred += 1
            log.warning(
                "delivery %d left queued for the next dispatch: %s", delivery_id, failure.reply
            )
        if isinstance(failure, SetupFailure) or failure.connection:
            # The next message would fail the same way.
            summary.stopped = failure.reply
        return
    _finish(session, delivery_id, claimer, status=DeliveryStatus.SENT, sent_at=utcnow(), error=None)
    summary.sent += 1


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
        sections = [(kw, list(ids)) for kw, ids in delivery.sections]
    else:
        sections = compute_sections([subscriber], renderer.papers)[subscriber.id]
    links = subscriber_links(config, subscriber.public_id, listing_date)
    now = utcnow().replace(second=0, microsecond=0)
    return renderer.render(subscriber, sections, now, links)
