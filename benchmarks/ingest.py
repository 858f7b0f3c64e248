"""Parse + store time for a full day of arXiv (1,504 items) on SQLite and PostgreSQL.

    python benchmarks/ingest.py [--runs 5]

PostgreSQL is used when BENCH_DATABASE_URL is set, else the local server at
postgresql+psycopg://postgres:postgres@127.0.0.1/bench_ingest is tried (see
benchmarks/README.md to set it up); SQLite always runs, in a temporary file.

Baselines measured in the same run: `parse only` (the XML parse alone) and
`plain insert` (one executemany INSERT of the same 1,504 rows into an empty
table, no lookups, no FeedFetch/ListingDay bookkeeping). The figures of
interest: `ingest, empty db` (first ingest of the day) and `ingest again`
(the same feed once more: every paper looked up, nothing written).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from newsletter import create_app, db
from newsletter.config import settings
from newsletter.db import utcnow
from newsletter.models import AnnounceType, Base, Paper
from worker.arxiv import ingest
from worker.arxiv.feeds import parse_feed

FEED = Path(__file__).resolve().parent.parent / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
DEFAULT_PG = "postgresql+psycopg://postgres:postgres@127.0.0.1/bench_ingest"


def reset(url: str) -> None:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    engine.dispose()


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bench(url: str, data: bytes, runs: int) -> dict[str, list[float]]:
    reset(url)
    app = create_app(
        {"SECRET_KEY": "bench", "DATABASE_URL": url, "REDIS_URL": None, "LOG_LEVEL": "WARNING"}
    )
    results: dict[str, list[float]] = {
        "parse only": [],
        "plain insert": [],
        "ingest, empty db": [],
        "ingest again": [],
    }
    parsed = parse_feed(data)
    rows = [
        {
            "arxiv_id": i.arxiv_id,
            "version": i.version,
            "title": i.title,
            "authors": i.authors,
            "categories": i.categories,
            "abstract": i.abstract,
            "comments": i.comments,
            "doi": i.doi,
            "journal_ref": i.journal_ref,
            "listing_date": parsed.feed_date,
            "announce_type": AnnounceType(i.announce_type),
            "created_at": utcnow(),
            "updated_at": utcnow(),
        }
        for i in parsed.items
    ]
    with app.app_context():
        engine = db.engine()
        config = settings()
        for _ in range(runs):
            results["parse only"].append(timed(lambda: parse_feed(data)))

            def plain_insert() -> None:
                with engine.begin() as connection:
                    connection.execute(Paper.__table__.insert(), rows)

            results["plain insert"].append(timed(plain_insert))
            _empty(engine)
            results["ingest, empty db"].append(timed(lambda: ingest.ingest_file(config, FEED)))
            results["ingest again"].append(timed(lambda: ingest.ingest_file(config, FEED)))
            db.session().close()
            _empty(engine)
    engine.dispose()
    return results


def _empty(engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def postgres_url() -> str | None:
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_PG
    try:
        engine = create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return url
    except Exception as exc:  # no server: report and go on with SQLite
        print(
            f"PostgreSQL not available ({type(exc).__name__}); set BENCH_DATABASE_URL",
            file=sys.stderr,
        )
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = FEED.read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        targets = [("SQLite", f"sqlite:///{folder}/bench.sqlite3")]
        pg = postgres_url()
        if pg:
            targets.append(("PostgreSQL", pg))
        print(f"{FEED.name}: {len(data):,} bytes, 1504 items; median of {args.runs} runs")
        for name, url in targets:
            results = bench(url, data, args.runs)
            base = statistics.median(results["plain insert"]) + statistics.median(
                results["parse only"]
            )
            print(f"\n{name}")
            for label, times in results.items():
                print(f"  {label:<18} {statistics.median(times) * 1000:8.1f} ms")
            first = statistics.median(results["ingest, empty db"])
            print(f"  ingest / (parse + plain insert) = {first / base:.2f}x")


if __name__ == "__main__":
    main()
