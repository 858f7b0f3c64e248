"""Benchmark the keyword preview: POST /preview with 20 lines over 30 stored days.

Run by hand: `python benchmarks/preview.py [--requests N] [--baseline N]`.
On a SQLite file (or BENCH_DATABASE_URL) it stores 30 complete listing dates of
1,504 papers each (45,120): the real day of tests/data, each day's papers made
from it with titles, abstracts and authors re-paired per day, so no two days
share a text (the matcher's LRU of tokenized texts gets no free hits). Lines
come from benchmarks/match.py's pool (the day's own 1-3-grams, cat:, au:,
exclusions). Timed, through the app (GET /preview.js, as the page's script asks; rate limit,
rendering included):

- typing: 20 lines, one of them changed per request (a new line from the pool)
- fresh: 20 lines all new per request
- the first request after start (the 5 days' index built)

Baseline, in the same run: the naive way, per request, `DayDigest.load` of each
of the 5 days (all their papers from the database) and its sections.
Memory: tracemalloc around a second build of the cache (the indexes alone).

`--matcher-lru N` rebinds worker/digest/selection.py's LRU of tokenized texts
(16,384 entries since the preview came; 4,096 before) with N entries, in this
process only: to compare cache sizes, not what the app runs.
"""

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from match import keyword_pool  # noqa: E402

from newsletter import create_app, db, preview, preview_index  # noqa: E402
from newsletter.config import settings
from newsletter.models import AnnounceType, Base, ListingDay, Paper  # noqa: E402
from worker import calendar  # noqa: E402
from worker.arxiv.feeds import parse_feed  # noqa: E402
from worker.digest import selection  # noqa: E402
from worker.digest.core import DayDigest, Reader  # noqa: E402

FEED = Path(__file__).resolve().parents[1] / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
DAYS = 30
LINES = 20


def listing_dates(count: int) -> list[date]:
    days = [date(2024, 11, 28)]
    while len(days) < count:
        days.append(calendar.previous_listing_date(days[-1]))
    return days


def store(url: str, items) -> list[date]:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    days = listing_dates(DAYS)
    n = len(items)
    stored = datetime(2024, 11, 28, 6, tzinfo=UTC)
    with engine.begin() as connection:
        for k, day in enumerate(days):
            rows = [
                {
                    "arxiv_id": f"{item.arxiv_id}.{k}",
                    "version": 1,
                    "title": item.title,
                    "abstract": items[(i + 7 * k + 1) % n].abstract if k else item.abstract,
                    "authors": items[(i + 3 * k) % n].authors,
                    "categories": item.categories,
                    "listing_date": day,
                    "announce_type": AnnounceType(item.announce_type),
                    "created_at": stored - timedelta(days=k),
                    "updated_at": stored - timedelta(days=k),
                }
                for i, item in enumerate(items)
            ]
            connection.execute(insert(Paper), rows)
            connection.execute(
                insert(ListingDay),
                [{"listing_date": day, "completed_at": stored - timedelta(days=k, hours=-1)}],
            )
    engine.dispose()
    return days


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", type=int, default=5)
    parser.add_argument("--matcher-lru", type=int, default=0)
    args = parser.parse_args()
    if args.matcher_lru:
        original = selection._paper_stream.__wrapped__
        selection._paper_stream = functools.lru_cache(maxsize=args.matcher_lru)(original)
        print(f"EXPERIMENT: matching's LRU of tokenized texts has {args.matcher_lru} entries")
    items = parse_feed(FEED.read_bytes()).items
    rng = random.Random(12)
    # Every line is asked once (no help from the preview's own cache of lines' sections).
    needed = LINES * (1 + args.requests + args.baseline) + args.requests
    pool = keyword_pool(items, needed, rng)
    rng.shuffle(pool)
    unused = iter(pool)

    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{folder}/preview.sqlite3"
        started = time.perf_counter()
        days = store(url, items)
        print(f"stored {DAYS} days x {len(items)} papers in {time.perf_counter() - started:.1f} s")
        app = create_app(
            {
                "SECRET_KEY": "bench",
                "DATABASE_URL": url,
                "REDIS_URL": None,
                "LOG_LEVEL": "WARNING",
                "PREVIEW_LIMIT_PER_IP": 10**9,
            }
        )
        client = app.test_client()

        def ask(lines: list[str]) -> float:
            query = {"keywords": "\n".join(lines), "n": "1"}
            start = time.perf_counter()
            response = client.get("/preview.js", query_string=query)
            elapsed = time.perf_counter() - start
            assert response.status_code == 200, response.status_code
            # Five days' counts per line (the fragment's "<strong>", escaped in the script).
            assert response.get_data(as_text=True).count("\\u003cstrong\\u003e") == 5 * len(lines)
            return elapsed

        lines = [next(unused) for _ in range(LINES)]
        first = ask(lines)
        with app.app_context():
            cached = preview.day_cache()._days
            papers = sum(len(day.ids) for day in cached.values())
            tracemalloc.start()
            again = preview_index.DayCache().days(db.session())
            size, _peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del again
            db.session().expunge_all()
        print(
            f"first request (index of {len(cached)} days, {papers} papers built): {first * 1000:.0f} ms"
        )
        print(f"memory of the 5 days' index (tracemalloc, papers included): {size / 2**20:.1f} MiB")

        typing = []
        for _ in range(args.requests):
            lines[rng.randrange(LINES)] = next(unused)
            typing.append(ask(lines))
        print(f"typing (one line new per request):  {percentiles(typing)}")
        fresh = [ask([next(unused) for _ in range(LINES)]) for _ in range(args.requests)]
        print(f"fresh (20 new lines per request):   {percentiles(fresh)}")

        # Baseline: per request, each day's papers loaded and matched whole.
        baseline = []
        with app.app_context():
            for _ in range(args.baseline):
                lines = [next(unused) for _ in range(LINES)]
                reader = Reader(tuple(lines), "en", "UTC", False)
                start = time.perf_counter()
                for day in days[:5]:
                    DayDigest.load(db.session(), settings(app), day).sections({0: reader})
                baseline.append(time.perf_counter() - start)
                db.session().expunge_all()
        print(f"baseline (load 5 days, match all):  {percentiles(baseline)}")
        app.extensions["db_engine"].dispose()


if __name__ == "__main__":
    main()
