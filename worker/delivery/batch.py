"""Sending one claimed batch: render, serialize, send and record each row.

Used by worker/delivery/sending.py's drain loop (and benchmarks/send.py).
`Sender` renders the batch's rows with the day's `DayDigest`, then serializes
each with worker/delivery/mime.py, hands it to the batch's SMTP connection and
records the outcome right after the server answers, with one autocommit statement
(worker/delivery/ledger.py). Outcomes: accepted -> sent; 5xx -> failed and
counted as a hard bounce; 4xx -> deferred (queued again with a backoff) while
the batch goes on; the relay unreachable after bounded reconnects -> the
batch's untried rows are given back and the drain stops.
"""

import logging
import os
import time
import tracemalloc
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, timedelta

from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.models import DeliveryStatus, SubscriberStatus
from newsletter.tokens import subscriber_links
from worker.delivery import ledger
from worker.delivery.claims import Claim
from worker.delivery.leases import Heartbeat, LedgerConnection
from worker.delivery.mail import Mailer
from worker.delivery.mime import DigestMime, SegmentCache
from worker.delivery.smtp import PermanentFailure, SetupFailure, TemporaryFailure
from worker.delivery.summary import SendSummary
from worker.digest import day_cache
from worker.digest.core import DayDigest, Reader
from worker.digest.rendered import DigestEmail

log = logging.getLogger(__name__)

# Encoded body segments, shared by every drain of this process.
_SEGMENTS = SegmentCache()
# Debugging memory: a folder for `_heap_report`, every _HEAP_EVERY messages sent.
_HEAP_REPORT = os.environ.get("NEWSLETTER_HEAP_REPORT")
_HEAP_EVERY = 2500
# A rendered digest and its one-click unsubscribe URL (the message's List-Unsubscribe).
Rendered = tuple[DigestEmail, str]


def _heap_report(sent: int) -> None:
    """With NEWSLETTER_HEAP_REPORT=FOLDER, append where this process's memory is (debugging).

    Called every few thousand messages: the process's RSS, the deep size of
    this module's caches, and the largest allocation sites when tracemalloc
    runs (PYTHONTRACEMALLOC=1). benchmarks/scale.py --heap-report sets it.
    """
    folder = _HEAP_REPORT
    if folder is None:
        return
    from benchmarks.heap import census  # debugging only: not on a production path
    from worker.digest import entries as digest_entries
    from worker.digest import highlight, matching, selection
    from worker.digest import text as digest_text

    roots = {
        "days": day_cache.DAYS,
        "mime": _SEGMENTS,
        "readable": digest_entries.readable,
        "wrap_text": digest_text.wrap_text,
        "line_variants": highlight.line_variants,
        "_paper_stream": selection._paper_stream,
        "name_words": matching.name_words,
    }
    lines = [f"== pid {os.getpid()} after {sent} sent", *census(roots)]
    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("lineno")
        lines += [str(stat) for stat in stats[:30]]
    with open(os.path.join(folder, f"heap-{os.getpid()}.txt"), "a") as out:
        out.write("\n".join(lines) + "\n")


class Sender:
    """Renders, serializes, sends and records claimed rows of one day."""

    def __init__(self, config: Settings, listing_date: date, day: DayDigest, connection):
        self.config = config
        self.listing_date = listing_date
        self.day = day
        self.connection: LedgerConnection = connection
        self.mime = DigestMime(config, _SEGMENTS)
        self.summary = SendSummary()
        # Weekly digests of the day, by first listing date, for this drain.
        self._spans: dict[date, DayDigest] = {}

    def send_batch(
        self, batch: list[Claim], claimer: str, mailer: Mailer, heartbeat: Heartbeat
    ) -> None:
        """Send each claimed row; on a stop, give the untried rows back.

        A second thread first renders the whole batch, one digest after the
        other: renders back to back find the day's pieces still in the CPU's
        caches, where a message's build and send between two renders had
        pushed them out (benchmarks/README.md, "Ninth look": ~10-25% less render
        CPU). It then builds the next row's message while this row's SMTP
        exchange and ledger update wait on the network (the build is CPU, the
        waits are not); a message still goes only once the one before it is
        recorded, so a crash repeats at most the one in flight.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="build") as builder:
            renders = builder.submit(lambda: [self._render(claim) for claim in batch])
            upcoming = builder.submit(self._serialize, batch[0], renders, 0)
            for index, claim in enumerate(batch):
                built = upcoming.result()
                if index + 1 < len(batch):
                    upcoming = builder.submit(self._serialize, batch[index + 1], renders, index + 1)
                if not heartbeat.valid():
                    self.summary.stopped = "lease renewals failed (database unreachable)"
                if self.summary.stopped:
                    self._give_back([c.id for c in batch[index:]], claimer)
                    return
                self.send_one(claim, claimer, mailer, built)

    def _give_back(self, untried: list[int], claimer: str) -> None:
        try:
            self.connection.run(lambda c: ledger.release(c, untried, claimer))
        except Exception:  # their leases lapse instead; any drain takes them then
            log.exception("could not give back %d claimed rows", len(untried))
        log.error(
            "drain of %s stopped; %d claimed rows given back: %s",
            self.listing_date,
            len(untried),
            self.summary.stopped,
        )

    def _render(self, claim: Claim) -> Rendered | Exception | None:
        """The row's digest, the error that stopped it, or None if it is not to be sent.

        Runs on the batch's build thread, the only one that adds to the
        summary's digests and render/MIME CPU (thread CPU: the SMTP thread's
        work is not counted).
        """
        if claim.status is not SubscriberStatus.CONFIRMED:
            return None
        try:
            reader = Reader(
                claim.keywords,
                claim.language,
                claim.timezone,
                claim.include_replacements,
                claim.tldr,
            )
            # The dispatch minute, not the send time: a resend after a crash is the
            # same digest, and digests dispatched together share a render.
            generated_at = claim.created_at.replace(second=0, microsecond=0)
            links = subscriber_links(self.config, claim.public_id, self.listing_date)
            digest = self._digest(claim)
            started = time.thread_time()
            rendered = digest.render_email(reader, claim.sections, generated_at, links)
            self.summary.render_cpu += time.thread_time() - started
            return rendered, links["one_click_url"]
        except Exception as error:  # reported by send_one, in order
            return error

    def _serialize(
        self, claim: Claim, renders: Future[list[Rendered | Exception | None]], index: int
    ) -> bytes | Exception | None:
        """The row's message as wire bytes (see `_render` for what else it may be)."""
        rendered = renders.result()[index]
        if rendered is None or isinstance(rendered, Exception):
            return rendered
        try:
            return self._mime(claim, *rendered)
        except Exception as error:  # reported by send_one, in order
            return error

    def message(self, claim: Claim) -> bytes:
        """The row's message as wire bytes, with its stored Message-ID (benchmarks/send.py)."""
        rendered = self._render(claim)
        if isinstance(rendered, Exception):
            raise rendered
        if rendered is None:
            raise ValueError(f"delivery {claim.id}: subscriber {claim.status.value}")
        return self._mime(claim, *rendered)

    def _mime(self, claim: Claim, rendered: DigestEmail, one_click_url: str) -> bytes:
        started = time.thread_time()
        raw = self.mime.build(
            to=claim.email,
            subject=rendered.subject,
            text_segments=rendered.text_segments,
            html_segments=rendered.html_segments,
            message_id=claim.message_id,
            one_click_url=one_click_url,
            date=utcnow(),
        )
        self.summary.mime_cpu += time.thread_time() - started
        self.summary.digests += 1
        return raw

    def _digest(self, claim: Claim) -> DayDigest:
        """The day's digest, or the weekly one (several listing dates) the row covers."""
        first = claim.first_listing_date
        if first is None:
            return self.day
        if first not in self._spans:
            engine = self.connection.engine
            self._spans[first] = day_cache.day_digest(engine, self.config, self.listing_date, first)
        return self._spans[first]

    def send_one(
        self, claim: Claim, claimer: str, mailer: Mailer, raw: bytes | Exception | None
    ) -> None:
        """Send one row's built message (see `_build`) and record the outcome."""
        config, summary, run = self.config, self.summary, self.connection.run
        if claim.status is not SubscriberStatus.CONFIRMED:
            why = f"subscriber {claim.status.value}"
            run(lambda c: ledger.finish(c, claim.id, claimer, DeliveryStatus.SKIPPED, why))
            summary.skipped += 1
            return
        if isinstance(raw, Exception) or raw is None:
            # One digest that cannot be rendered must not hold up the rest.
            log.error("delivery %d: rendering failed", claim.id, exc_info=raw, extra=_ids(claim))
            why = f"render failed: {raw!r}"
            run(lambda c: ledger.finish(c, claim.id, claimer, DeliveryStatus.FAILED, why))
            summary.failed += 1
            return
        try:
            mailer.deliver(self.mime.sender_address, claim.email, raw, claim.message_id)
        except PermanentFailure as failure:
            reply = failure.reply
            log.warning("delivery %d refused: %s", claim.id, reply, extra=_ids(claim))
            run(lambda c: ledger.finish(c, claim.id, claimer, DeliveryStatus.FAILED, reply))
            limit = config.BOUNCE_LIMIT
            if run(lambda c: ledger.record_bounce(c, claim.subscriber_id, limit)):
                log.warning(
                    "subscriber %d suppressed after repeated hard bounces",
                    claim.subscriber_id,
                    extra=_ids(claim),
                )
            summary.failed += 1
            return
        except (TemporaryFailure, SetupFailure) as failure:
            self._temporary(claim, claimer, failure)
            return
        if not run(lambda c: ledger.mark_sent(c, claim.id, claimer)):
            log.warning(
                "delivery %d: claim lost before it was recorded as sent",
                claim.id,
                extra=_ids(claim),
            )
        summary.sent += 1
        if _HEAP_REPORT and summary.sent % _HEAP_EVERY == 0:
            _heap_report(summary.sent)

    def _temporary(
        self, claim: Claim, claimer: str, failure: TemporaryFailure | SetupFailure
    ) -> None:
        """A 4xx for this recipient defers the row; a dead relay or our setup stops the drain."""
        run, summary = self.connection.run, self.summary
        stops = isinstance(failure, SetupFailure) or failure.connection
        if claim.attempts >= self.config.DELIVERY_MAX_ATTEMPTS:
            why = failure.reply
            run(lambda c: ledger.finish(c, claim.id, claimer, DeliveryStatus.FAILED, why))
            summary.failed += 1
        else:
            # After a dead relay the next dispatch may try at once; a 4xx waits its backoff.
            wait = ledger.retry_delay(claim.attempts, self.config.DELIVERY_RETRY_SECONDS)
            not_before: datetime = utcnow() + (timedelta(0) if stops else wait)
            run(lambda c: ledger.defer(c, claim.id, claimer, failure.reply, not_before))
            summary.deferred += 1
            log.warning(
                "delivery %d deferred until %s: %s",
                claim.id,
                not_before,
                failure.reply,
                extra=_ids(claim),
            )
        if stops:
            summary.stopped = failure.reply


def _ids(claim: Claim) -> dict[str, int]:
    """The row's ids for the log line's record (LOG_FORMAT=json shows them as fields)."""
    return {"delivery_id": claim.id, "subscriber_id": claim.subscriber_id}
