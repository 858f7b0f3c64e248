"""Sending one chunk of a day's digests: the sender's side of the delivery ledger.

Run by the RQ job `worker.jobs.send_digest_chunk` and in-process by
`dispatch_digests(send_now=True)`; worker/delivery.py makes the rows and
describes the ledger. This module owns what happens to a row after dispatch:
the atomic claim, the render (one shared render per identical digest,
personalized with each subscriber's links), SMTP over one connection per
chunk, and the outcome, with hard bounces counted up to suppression. Each
state change is committed at once: no transaction stays open while SMTP talks.
"""

import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from emails import RenderedEmail
from newsletter import db
from newsletter.db import utcnow
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
)
from newsletter.tokens import subscriber_links
from worker import digest
from worker.mail import (
    Mailer,
    PermanentFailure,
    SetupFailure,
    TemporaryFailure,
    build_digest_message,
)

log = logging.getLogger(__name__)

# (keyword, arXiv ids) in the subscriber's keyword order, as fixed at dispatch.
Sections = list[tuple[str, list[str]]]
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


# --- the ledger's state changes, each committed at once ---


def claimable(cutoff: datetime):
    """Queued, or claimed before `cutoff` by a worker that never finished (it died).

    The one definition of "still to send": a claim takes only such a row, and
    dispatch queues exactly these rows again.
    """
    return or_(
        Delivery.status == DeliveryStatus.QUEUED,
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < cutoff),
    )


def worker_name() -> str:
    """Who holds a claim: host, process, and a random tag unique to this chunk run."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


def claim_delivery(
    session: Session, delivery_id: int, claimer: str, now: datetime, lease: timedelta
) -> bool:
    """Atomically take a row for sending; False if it is done or another worker holds it."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, claimable(now - lease))
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
    if values.get("error"):
        # SMTP replies and exception texts have no length limit.
        values["error"] = values["error"][:_ERROR_MAX]
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


# --- rendering ---


def wants_translation(language: str) -> bool:
    """Whether a subscriber's digest language is bilingual (e.g. "en+zh")."""
    return "+" in language


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
            self._translations = digest.load_translations(self.session, self.papers, target)
        return self._translations

    def render(
        self,
        subscriber: Subscriber,
        sections: Sections,
        generated_at: datetime,
        links: dict[str, str],
    ) -> RenderedEmail:
        """`subscriber`'s digest with their own `links`; `sections` may be a row's stored JSON."""
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
        rendered = self.render(subscriber, delivery.sections or [], generated_at, links)
        return build_digest_message(
            self.config,
            to=subscriber.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=delivery.message_id,
            one_click_url=links["one_click_url"],
        )


# --- sending ---


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
        error_text = f"render failed: {error!r}"
        _finish(session, delivery_id, claimer, status=DeliveryStatus.FAILED, error=error_text)
        summary.failed += 1
        return
    session.commit()  # no transaction stays open during network I/O
    try:
        mailer.send(message)
    except PermanentFailure as failure:
        log.warning("delivery %d refused: %s", delivery_id, failure.reply)
        _finish(session, delivery_id, claimer, status=DeliveryStatus.FAILED, error=failure.reply)
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
            error=failure.reply,
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
