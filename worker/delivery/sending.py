"""Draining a day's delivery ledger: claim a batch, send it, until none is left.

Run by the RQ job `worker.jobs.drain_deliveries` (queued by every dispatch)
and in-process by `dispatch_digests(send_now=True)`. worker/delivery/claims.py and
ledger.py own the statements; this module owns the loop: claim up to DELIVERY_BATCH_SIZE
rows in one statement and hand them to worker/delivery/batch.py's `Sender`,
which renders each with the day's `DayDigest` (one per listing date per
process, reused across batches and jobs), sends the batch over one SMTP
connection and records each row right after the server answers. The cyclic GC
runs only after each batch, on what the batch made (worker/delivery/collector.py).

The drain's last log line also gives the CPU per digest (thread CPU) spent
rendering, building the MIME and settling the GC, and over how many digests:
benchmarks/scale.py reads it from the workers' logs.

The drain stops early when the relay is unreachable (the batch's untried
rows are given back). A heartbeat renews this drain's leases; if the worker
dies its rows are taken by any other drain once the lease lapses (a drain
with nothing left to claim waits while other workers hold rows).
"""

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta

from newsletter import db
from newsletter.config import settings
from newsletter.db import utcnow
from worker.delivery import claims
from worker.delivery.batch import Sender
from worker.delivery.collector import settled_heap
from worker.delivery.leases import Heartbeat, LedgerConnection
from worker.delivery.mail import Mailer
from worker.delivery.summary import SendSummary
from worker.digest import day_cache

log = logging.getLogger(__name__)

# How often a drain with nothing to claim looks again while others hold rows.
_RECHECK_SECONDS = 5.0


def drain_day(
    listing_date_iso: str,
    time_budget: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SendSummary:
    """Send the day's claimable rows batch by batch until none is left (or the budget is used).

    `progress` gets (rows done, rows claimable when the drain began) after each batch.
    The stage's entry (the RQ edge, dispatch's `send_now` and tests call it): it
    reads the app's settings once and passes them to everything below.
    """
    config = settings()
    engine = db.engine()
    listing_date = date.fromisoformat(listing_date_iso)
    claimer = claims.worker_name()
    lease = timedelta(seconds=config.DELIVERY_LEASE_SECONDS)
    connection = LedgerConnection(engine, config.DELIVERY_DB_RETRY_SECONDS)
    day = day_cache.day_digest(engine, config, listing_date)
    sender = Sender(config, listing_date, day, connection)
    started = time.monotonic()
    summary = sender.summary
    total = 0
    if progress is not None:
        max_attempts = config.DELIVERY_MAX_ATTEMPTS
        total = connection.run(lambda c: claims.count_claimable(c, listing_date, max_attempts))
        progress(0, total)
    try:
        with (
            Heartbeat(engine, claimer, lease) as heartbeat,
            Mailer(config) as mailer,
            settled_heap() as settle,
        ):
            while not summary.stopped:
                if time_budget is not None and time.monotonic() - started > time_budget:
                    summary.out_of_time = True
                    break
                batch = connection.run(
                    lambda c: claims.claim_batch(
                        c,
                        listing_date,
                        claimer,
                        size=config.DELIVERY_BATCH_SIZE,
                        lease=lease,
                        max_attempts=config.DELIVERY_MAX_ATTEMPTS,
                    )
                )
                if not batch:
                    max_attempts = config.DELIVERY_MAX_ATTEMPTS
                    if not _wait_for_other_claims(connection, listing_date, claimer, max_attempts):
                        break
                    continue
                heartbeat.claimed()
                sender.send_batch(batch, claimer, mailer, heartbeat)
                settling = time.thread_time()
                settle()
                summary.gc_cpu += time.thread_time() - settling
                if progress is not None:
                    done = summary.sent + summary.skipped + summary.failed + summary.deferred
                    progress(done, max(total, done))
        summary.not_claimed = connection.run(
            lambda c: claims.count_held_by_others(c, listing_date, claimer)
        )
    finally:
        connection.close()
    log.info(
        "drain of %s: %d sent, %d skipped, %d failed, %d deferred%s%s",
        listing_date_iso,
        summary.sent,
        summary.skipped,
        summary.failed,
        summary.deferred,
        f"; stopped: {summary.stopped}" if summary.stopped else "",
        summary.cpu_line(),
    )
    return summary


def _wait_for_other_claims(connection, listing_date: date, claimer: str, max_attempts: int) -> bool:
    """While other workers hold rows of the day, wait a little; False once none does
    and none is left to claim.

    A live worker's lease is renewed and its rows stay its own; a dead one's
    lapses, and this drain takes them: they go within one lease, not at the
    next poll.
    """
    expiry = connection.run(lambda c: claims.next_lease_expiry(c, listing_date, claimer))
    if expiry is None:
        # A dead worker's lease may have lapsed since this drain's last (empty)
        # claim: its rows are claimable now, and this drain takes them.
        return connection.run(lambda c: claims.count_claimable(c, listing_date, max_attempts)) > 0
    time.sleep(min(max((expiry - utcnow()).total_seconds(), 0.0) + 0.1, _RECHECK_SECONDS))
    return True
