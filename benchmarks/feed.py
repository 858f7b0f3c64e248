"""Benchmark one request of the personal Atom feed (newsletter/feed.py).

Run by hand: `python benchmarks/feed.py [--runs N] [--database-url URL]`.
30 complete listing dates of 1,504 papers each (the real all-archives feed of
2024-11-28 from tests/data, stored once per date under new ids), one reader
with 5 keyword lines, the app on SQLite in a temporary file (or the given
database, whose tables it drops and recreates). Timed through Flask's test
client, median of N runs:

- cold: every cache empty (a new process, or the reader's first request);
- new day: the newest day's sections and entries not cached, the 29 others
  cached (the reader's first request after a listing date completed);
- warm, counts re-read: everything cached but the listing days' counts
  (a request after DAYS_TTL);
- warm: all cached (a reader polling without validators within DAYS_TTL);
- 304: If-None-Match with the current ETag.

Baseline, in the same run: reading the 30 days' papers as ORM rows (one SELECT),
what any feed that matches on each request pays before matching.
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.orm import Session

from newsletter import create_app, db, feed_cache
from newsletter.config import settings
from newsletter.models import Base, Keyword, ListingDay, Paper, Subscriber, SubscriberStatus
from newsletter.tokens import feed_url
from worker import calendar
from worker.arxiv.feeds import parse_feed

FEED = Path(__file__).resolve().parents[1] / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
LAST_DATE = datetime(2024, 11, 28).date()
DAYS = 30
LINES = [
    "reinforcement learning",
    "diffusion model",
    "graph neural network",
    "large language model cat:cs.CL",
    "transformer -vision",
]


def fill(url: str) -> None:
    """30 complete listing dates of the real day's papers, and one reader."""
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    items = parse_feed(FEED.read_bytes()).items
    now = datetime.now(UTC)
    day = LAST_DATE
    with Session(engine) as session:
        for n in range(DAYS):
            rows = [
                {
                    "arxiv_id": f"{item.arxiv_id}.{n}",
                    "version": item.version,
                    "title": item.title,
                    "authors": item.authors,
                    "categories": item.categories,
                    "abstract": item.abstract,
                    "comments": item.comments,
                    "listing_date": day,
                    "announce_type": item.announce_type,
                    "created_at": now - timedelta(days=n),
                    "updated_at": now - timedelta(days=n),
                }
                for item in items
            ]
            session.execute(insert(Paper), rows)
            session.add(ListingDay(listing_date=day, completed_at=now - timedelta(days=n)))
            day = calendar.previous_listing_date(day)
        session.add(
            Subscriber(
                email="reader@example.org",
                email_key="reader@example.org",
                status=SubscriberStatus.CONFIRMED,
                keywords=[Keyword(position=i, text=line) for i, line in enumerate(LINES)],
            )
        )
        session.commit()
    engine.dispose()


def median_ms(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/feed.sqlite3"
        fill(url)
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "bench",
                "DATABASE_URL": url,
                "REDIS_URL": None,
                "BASE_URL": "https://digest.example.org",
                "OUTBOX_DIR": f"{folder}/outbox",
            }
        )
        with app.app_context():
            subscriber = db.session().scalars(select(Subscriber)).one()
            path = feed_url(settings(app), subscriber.public_id).removeprefix(
                settings(app).BASE_URL
            )
            db.session().close()
        client = app.test_client()

        def get(**headers):
            response = client.get(path, headers=headers)
            assert response.status_code in (200, 304), response.status_code
            return response

        def cold():
            feed_cache.clear_caches()
            get()

        def new_day():
            # Forget the newest day's sections and entries (their keys start with its key).
            for kept in (feed_cache.SECTIONS, feed_cache.ENTRIES):
                for key in [k for k in kept if k[0][1] == LAST_DATE]:
                    del kept[key]
            get()

        def counts_reread():
            feed_cache.DAYS.clear()
            get()

        def baseline():
            with app.app_context():
                papers = db.session().scalars(select(Paper)).all()
                assert len(papers) > 40_000
                db.session().close()

        first = get()
        entries = first.get_data().count(b"<entry>")
        etag = first.headers["ETag"]
        figures = {
            "baseline: read the 30 days' papers (ORM)": median_ms(baseline, args.runs),
            "cold (every cache empty)": median_ms(cold, args.runs),
            "new day (29 days cached)": median_ms(new_day, args.runs),
            "warm, counts re-read": median_ms(counts_reread, args.runs),
            "warm (all cached)": median_ms(get, args.runs),
            "304 (If-None-Match)": median_ms(lambda: get(**{"If-None-Match": etag}), args.runs),
        }
        backend = url.split(":", 1)[0]
        print(f"{DAYS} listing dates x 1,504 papers, {len(LINES)} lines, {backend}")
        print(f"feed: {entries} entries, {len(first.get_data()) / 1024:.0f} KiB")
        for name, ms in figures.items():
            print(f"{name:45} {ms:8.1f} ms")
        app.extensions["db_engine"].dispose()


if __name__ == "__main__":
    main()
