"""What daily-or-weekly costs dispatch: `make_deliveries` with and without the ledger look-up.

    python benchmarks/weekly.py [--subscribers 10000] [--history 20] [--database-url URL]

Setup (not timed): the demo day (2026-05-29) and N confirmed daily subscribers
with the sample's two keywords, each with `--history` earlier delivery rows
(one per listing date before the demo day, as a month of daily digests
leaves), in a SQLite file (or the PostgreSQL database named by
--database-url, whose tables are dropped and made again).

Timed, in this process, each run on an empty day (its rows deleted between runs):
- `baseline`: `make_deliveries` with worker.delivery.weekly.last_rows answering
  {} without a query, i.e. dispatch as it was before weekly digests;
- `daily`: the real dispatch: one more query per page reads each
  subscriber's last row (all daily here, so every row is the day's alone);
- `weekly`: the same with every subscriber weekly on the demo day's weekday,
  their last row a week before: each row covers the week's listing dates
  (one more DayDigest, of the range; only the demo day has papers).
Each prints wall seconds and CPU ms per row.
"""

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from send import KEYWORDS, cpu_seconds, make_config  # noqa: E402


def seed(session, subscribers: int, history: int) -> None:
    """N daily subscribers, each with `history` delivery rows of the listing dates before the demo's."""
    from sqlalchemy import insert

    from newsletter.models import Delivery, DeliveryStatus, Keyword, Subscriber, SubscriberStatus
    from worker import calendar
    from worker.demo.load import DEMO_LISTING_DATE

    now = datetime.now(UTC)
    dates = []
    day = DEMO_LISTING_DATE
    for _ in range(history):
        day = calendar.previous_listing_date(day)
        dates.append(day)
    for start in range(0, subscribers, 2000):
        numbers = range(start, min(subscribers, start + 2000))
        session.execute(
            insert(Subscriber),
            [
                dict(
                    id=n + 1,
                    public_id=f"{n:032x}",
                    email=f"r{n}@example.com",
                    email_key=f"r{n}@example.com",
                    status=SubscriberStatus.CONFIRMED,
                    language="en",
                    timezone="UTC",
                    bounce_count=0,
                    include_replacements=False,
                    created_at=now,
                    updated_at=now,
                    confirmed_at=now - timedelta(days=60),
                )
                for n in numbers
            ],
        )
        session.execute(
            insert(Keyword),
            [
                dict(subscriber_id=n + 1, position=p, text=k)
                for n in numbers
                for p, k in enumerate(KEYWORDS)
            ],
        )
        session.execute(
            insert(Delivery),
            [
                dict(
                    subscriber_id=n + 1,
                    listing_date=d,
                    status=DeliveryStatus.SENT,
                    message_id=f"<{n}.{d}@bench>",
                    paper_count=0,
                    sections=[],
                    attempts=1,
                    created_at=now - timedelta(days=(DEMO_LISTING_DATE - d).days),
                )
                for n in numbers
                for d in dates
            ],
        )
    session.commit()


def timed(session, label: str, subscribers: int, now: datetime) -> None:
    from sqlalchemy import delete

    from newsletter.config import settings
    from newsletter.models import Delivery, ListingDay
    from worker.delivery.dispatch import DispatchSummary, make_deliveries
    from worker.demo.load import DEMO_LISTING_DATE

    session.execute(delete(Delivery).where(Delivery.listing_date == DEMO_LISTING_DATE))
    session.commit()
    day = session.get(ListingDay, DEMO_LISTING_DATE)
    summary = DispatchSummary(DEMO_LISTING_DATE)
    started, cpu = time.perf_counter(), cpu_seconds()
    make_deliveries(settings(), session, day, now, None, summary)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert summary.queued + summary.skipped == subscribers, summary
    print(f"{label:9} {seconds:6.2f} s  {cpu * 1000 / subscribers:6.3f} ms CPU/row", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    from sqlalchemy import delete, text, update

    from newsletter import create_app, db
    from newsletter.models import Base, Delivery, Subscriber
    from worker.delivery import weekly
    from worker.demo.load import DEMO_LISTING_DATE, load_demo

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(make_config(Path(folder), 25, args.database_url, 100))
        with app.app_context():
            engine = db.engine()
            Base.metadata.drop_all(engine)
            with engine.begin() as connection:
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            Base.metadata.create_all(engine)
            session = db.session()
            load_demo(session)
            session.commit()
            seed(session, args.subscribers, args.history)
            if engine.dialect.name == "postgresql":
                session.execute(text("ANALYZE"))
                session.commit()
            # Past the day's announcement, on its weekday (a Friday), 09:00 UTC.
            now = datetime.combine(DEMO_LISTING_DATE, datetime.min.time(), UTC) + timedelta(hours=9)
            print(
                f"{args.subscribers} subscribers, {args.history} earlier rows each, "
                f"{engine.dialect.name}",
                flush=True,
            )
            real = weekly.last_rows
            weekly.last_rows = lambda session, ids, listing_date: {}  # type: ignore[assignment]
            try:
                timed(session, "baseline", args.subscribers, now)
            finally:
                weekly.last_rows = real
            timed(session, "daily", args.subscribers, now)
            # Weekly on the demo day's weekday from 08:00, their last digest a week before.
            session.execute(
                update(Subscriber).values(
                    frequency="weekly", weekday=DEMO_LISTING_DATE.weekday(), delivery_hour=8
                )
            )
            week_ago = DEMO_LISTING_DATE - timedelta(days=7)
            session.execute(delete(Delivery).where(Delivery.listing_date > week_ago))
            session.commit()
            timed(session, "weekly", args.subscribers, now)


if __name__ == "__main__":
    main()
