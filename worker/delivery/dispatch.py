"""Exactly-once digest delivery: the ledger's rows, made once per subscriber and day.

Run by the RQ job `worker.jobs.dispatch_digests_job` (every scheduler poll) and
by `newsletter digest send|preview`. It owns making the `deliveries` rows and
queueing the drain jobs that worker/delivery/sending.py runs; worker/delivery/claims.py
and ledger.py own every later state change.

The ledger holds one row per (subscriber, listing date), made once by
`dispatch_digests` with its content (sections) and Message-ID fixed. Dispatch
streams: confirmed subscribers are read in keyset pages (Core rows, not ORM
objects), each page's keyword lines are matched by the day's `DayDigest`
(every distinct line once per day), and the page's rows are inserted with
one statement executed many times, ON CONFLICT DO NOTHING, so concurrent
dispatches stay idempotent and memory stays flat however many subscribers.

Drain jobs carry no job id: a duplicate finds nothing to claim and exits,
and a worker that died holds its rows only until their lease lapses. Every
dispatch (each poll) queues up to DELIVERY_SEND_JOBS of them while rows are
claimable, so a dead worker's rows go within a lease and one poll.

Who is due when is worker/delivery/due.py's (pure); which late papers a row
carries, worker/delivery/late.py's; each row's content and the INSERT,
worker/delivery/rows.py's.
"""

import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Executable, select
from sqlalchemy.orm import Session

from newsletter import db
from newsletter.config import Settings, settings
from newsletter.db import utcnow
from newsletter.models import (
    WEEKLY,
    Delivery,
    Keyword,
    ListingDay,
    Subscriber,
    SubscriberStatus,
)
from worker.delivery import claims, weekly
from worker.delivery.due import is_due
from worker.delivery.late import late_papers_due
from worker.delivery.rows import insert_statement, new_rows, rows_made
from worker.delivery.sending import drain_day
from worker.delivery.summary import SendSummary
from worker.digest.core import DayDigest, Reader
from worker.digest.day_cache import day_digest
from worker.queue import enqueue, redis_connection

log = logging.getLogger(__name__)

# Subscribers read (and rows inserted) per page at dispatch.
PAGE_SIZE = 1000
# Seconds one drain job sends before it hands over to a fresh job (RQ's job
# timeout is 1,800 s): a drain is never killed mid-batch by RQ.
DRAIN_BUDGET_SECONDS = 1200


@dataclass
class DispatchSummary:
    """What one run of `dispatch_digests` did."""

    listing_date: date
    ready: bool = True  # False: the day is not ingested yet, nothing was done
    held: int = 0  # subscribers waiting for their delivery hour or the translation
    queued: int = 0  # rows this run made to be sent
    skipped: int = 0  # rows this run made as skipped (no matching paper)
    given_up: int = 0  # rows whose worker died DELIVERY_MAX_ATTEMPTS times
    late_papers: int = 0  # late papers (of earlier dates) placed in the rows made
    claimable: int = 0  # rows still to send after the rows were made
    drain_jobs: int = 0  # drain jobs enqueued (or drains run, with send_now)
    sending: SendSummary = field(default_factory=SendSummary)  # with send_now only


# --- dispatch ---


def dispatch_digests(
    listing_date: date,
    now: datetime | None = None,
    *,
    send_now: bool = False,
    confirmed_before: datetime | None = None,
    subscriber_ids: Collection[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DispatchSummary:
    """Make the day's missing delivery rows and queue drain jobs while rows are claimable.

    Idempotent and safe to run concurrently: rows are inserted with ON
    CONFLICT DO NOTHING and sending claims rows under leases. With
    `send_now` the day is drained in this process (the CLI) instead. With
    `confirmed_before`, only subscribers confirmed before then get a new row
    (a past day goes to those who were subscribed while it was current).
    With `subscriber_ids`, only those subscribers get a new row (a subscriber
    who just confirmed, worker.jobs.dispatch_confirmed_digest); the drain is the
    day's as always. `progress` (with `send_now`) gets the drain's (rows done, rows to send).
    The stage's entry (the RQ edge, the CLI and tests call it): it reads the app's
    settings once and passes them down.
    """
    config = settings()
    session = db.session()
    now = now or utcnow()
    summary = DispatchSummary(listing_date)
    day = session.get(ListingDay, listing_date)
    if day is None or day.completed_at is None:
        summary.ready = False
        log.info("listing date %s is not complete; no digests yet", listing_date)
        return summary

    make_deliveries(config, session, day, now, confirmed_before, summary, subscriber_ids)
    max_attempts = config.DELIVERY_MAX_ATTEMPTS
    connection = session.connection()
    summary.given_up = claims.give_up_dead_claims(connection, listing_date, max_attempts)
    summary.claimable = claims.count_claimable(connection, listing_date, max_attempts)
    session.commit()
    if summary.claimable:
        if send_now:
            summary.drain_jobs = 1
            summary.sending.add(drain_day(listing_date.isoformat(), progress=progress))
        else:
            _queue_drains(config, listing_date, summary)
    log.info(
        "dispatch %s: %d queued (%d late papers placed), %d skipped (no papers), %d held, "
        "%d to send, %d drain job(s)",
        listing_date,
        summary.queued,
        summary.late_papers,
        summary.skipped,
        summary.held,
        summary.claimable,
        summary.drain_jobs,
    )
    return summary


def _queue_drains(config: Settings, listing_date: date, summary: DispatchSummary) -> None:
    """Enough drain jobs for the claimable rows, at most DELIVERY_SEND_JOBS."""
    batches = math.ceil(summary.claimable / max(1, config.DELIVERY_BATCH_SIZE))
    wanted = min(max(1, config.DELIVERY_SEND_JOBS), batches)
    if redis_connection(config.REDIS_URL) is None:
        wanted = 1  # run in-process right away: one drain sends everything
    for _ in range(wanted):
        summary.drain_jobs += 1
        # By name: the RQ edge (worker/jobs.py) calls this stage, never the other way round.
        enqueue("worker.jobs.drain_deliveries", listing_date.isoformat())


def make_deliveries(
    config: Settings,
    session: Session,
    day: ListingDay,
    now: datetime,
    confirmed_before: datetime | None,
    summary: DispatchSummary,
    subscriber_ids: Collection[int] | None = None,
) -> None:
    """Insert the rows of due subscribers without one, page by page; count them in `summary`.

    The first half of a dispatch; benchmarks/send.py times it alone.
    """
    listing_date = day.listing_date
    deadline = timedelta(minutes=config.TRANSLATION_DEADLINE_MINUTES)
    if config.TRANSLATION_BACKEND == "none":
        deadline = timedelta(0)  # no translation is coming: nothing to wait for
    digests = day_digest(db.engine(), config, listing_date)
    without_row = ~(
        select(Delivery.id)
        .where(Delivery.subscriber_id == Subscriber.id, Delivery.listing_date == listing_date)
        .exists()
    )
    eligible = [Subscriber.status == SubscriberStatus.CONFIRMED, without_row]
    if confirmed_before is not None:
        eligible.append(Subscriber.confirmed_at < confirmed_before)
    if subscriber_ids is not None:
        eligible.append(Subscriber.id.in_(sorted(subscriber_ids)))
    columns = (
        Subscriber.id,
        Subscriber.language,
        Subscriber.timezone,
        Subscriber.include_replacements,
        Subscriber.delivery_hour,
        Subscriber.frequency,
        Subscriber.weekday,
        Subscriber.confirmed_at,
        Subscriber.frequency_changed_at,
        Subscriber.tldr,
    )
    # Weekly rows are made only for the latest complete date (worker/delivery/weekly.py).
    latest = not session.scalar(
        select(ListingDay.listing_date)
        .where(ListingDay.listing_date > listing_date, ListingDay.completed_at.is_not(None))
        .limit(1)
    )
    # Weekly digests of this dispatch, by first listing date, made once.
    spans: dict[date, DayDigest] = {}
    insert = insert_statement(session)
    after = 0
    while True:
        page = session.execute(
            select(*columns)
            .where(*eligible, Subscriber.id > after)
            .order_by(Subscriber.id)
            .limit(PAGE_SIZE)
        ).all()
        if not page:
            break
        first, after = page[0].id, page[-1].id
        lines: dict[int, list[str]] = {}
        for subscriber_id, text in session.execute(
            select(Keyword.subscriber_id, Keyword.text)
            .where(Keyword.subscriber_id.between(first, after))
            .order_by(Keyword.subscriber_id, Keyword.position)
        ):
            lines.setdefault(subscriber_id, []).append(text)
        tldr = {row.id for row in page if row.tldr}
        last = weekly.last_rows(session, [row.id for row in page], listing_date)
        # Readers by the first listing date their row covers (None: the day alone).
        groups: dict[date | None, dict[int, Reader]] = {}
        for row in page:
            id_, language, timezone, hour = row.id, row.language, row.timezone, row.delivery_hour
            schedule = weekly.Schedule(
                row.frequency,
                row.weekday,
                timezone,
                hour,
                row.confirmed_at,
                row.frequency_changed_at,
            )
            start = weekly.row_start(listing_date, now, schedule, last.get(id_), latest=latest)
            if start is None:
                continue  # weekly, not its weekday; or a weekly row covered the date
            reader = Reader(
                tuple(lines.get(id_, ())),
                language,
                timezone,
                row.include_replacements,
                id_ in tldr,
            )
            # TL;DRs come with the day's translations: a digest showing them waits alike.
            bilingual = digests.is_bilingual(reader) or reader.tldr
            # A weekly row waits for its weekday's hour (row_start), not the day's.
            hour = None if schedule.frequency == WEEKLY else hour
            if is_due(
                day, now, deadline, timezone=timezone, delivery_hour=hour, bilingual=bilingual
            ):
                weekly_row = schedule.frequency == WEEKLY or start < listing_date
                groups.setdefault(start if weekly_row else None, {})[id_] = reader
            else:
                summary.held += 1
        for start, readers in groups.items():
            if start is None or start == listing_date:
                covering = digests  # a weekly row of one date is that day's digest
            elif start not in spans:
                covering = spans[start] = day_digest(db.engine(), config, listing_date, start)
            else:
                covering = spans[start]
            _make_rows(config, session, insert, covering, readers, summary, start)
        session.commit()


def _make_rows(
    config: Settings,
    session: Session,
    insert: Executable,
    digests: DayDigest,
    readers: dict[int, Reader],
    summary: DispatchSummary,
    first_listing_date: date | None,
) -> None:
    """Insert the rows of `readers` with `digests`' sections (a day's, or a weekly range's)."""
    late = late_papers_due(session, digests, readers)
    summary.late_papers += sum(len(ids) for ids in late.values())
    sections = digests.sections(readers, late)
    queued, skipped = new_rows(config, digests.listing_date, sections, first_listing_date)
    # Another dispatcher may have made some of these rows meanwhile: those
    # are left alone, and the row count names only the rows made here.
    if queued:
        summary.queued += rows_made(session, insert, queued)
    if skipped:
        summary.skipped += rows_made(session, insert, skipped)
