"""Benchmark the translation path around the model: placeholders, planning, caching.

Run by hand: `python benchmarks/translation.py [--subscribers N]`.
The model's own time is not ours to measure; this measures what we add.

1. protect + restore of every title and abstract of the real 1,504-item day
   (tests/data/rss_all-archives_2024-11-28.xml). Baseline: a JSON encode +
   decode of the same texts (what every request does anyway).
2. `translate_day` for that day with N bilingual subscribers (keyword lines
   from a pool of real title phrases) against an instant OpenAI-compatible
   server on 127.0.0.1: planning (which papers), the first run (every needed
   paper once), the second run (all from the cache). Baseline: the same number
   of bare POSTs to the same server.
"""

import argparse
import json
import random
import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from sqlalchemy import select

from newsletter import create_app, db
from newsletter.config import settings
from newsletter.models import (
    Base,
    Keyword,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from worker.arxiv.feeds import parse_feed
from worker.arxiv.store import paper_fields
from worker.translation.job import papers_to_translate, translate_day
from worker.translation.placeholders import PLACEHOLDER, protect, restore

FEED = Path(__file__).resolve().parents[1] / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
LISTING_DATE = date(2024, 11, 28)


def median_ms(func, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_placeholders(texts: list[str]) -> None:
    def round_trip():
        for text in texts:
            protected = protect(text)
            restore(protected.text, protected)

    def baseline():
        for text in texts:
            json.loads(json.dumps({"abstract": text}, ensure_ascii=False))

    ours, base = median_ms(round_trip), median_ms(baseline)
    count = sum(len(protect(t).originals) for t in texts)
    print(f"placeholders: {len(texts)} texts, {count} placeholders")
    print(f"  json encode+decode (baseline)  {base:8.1f} ms")
    print(f"  protect + restore              {ours:8.1f} ms  ({ours / base:.1f}x baseline)")


class InstantModel(BaseHTTPRequestHandler):
    """Answers every paper at once with CJK filler around its placeholders."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        items = []
        if body.get("messages"):
            for paper in json.loads(body["messages"][1]["content"])["papers"]:
                items.append(
                    {key: fake_chinese(paper[key]) for key in ("title", "abstract")}
                    | {"id": paper["id"]}
                )
        content = json.dumps({"translations": items}, ensure_ascii=False)
        data = json.dumps(
            {"choices": [{"message": {"content": content}}], "usage": {"total_tokens": 1000}},
            ensure_ascii=False,
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def fake_chinese(text: str) -> str:
    placeholders = PLACEHOLDER.findall(text)
    filler = "译" * max(2, len(text) * 3 // 10)
    return "".join(f"⟦{k}⟧" for k in placeholders) + filler


def bench_job(items, subscribers: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), InstantModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "SECRET_KEY": "bench",
                "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
                "TRANSLATION_BACKEND": "openai",
                "OPENAI_BASE_URL": url,
                "TRANSLATION_REQUESTS_PER_MINUTE": 0,
                "TRANSLATION_DAILY_TOKEN_BUDGET": 0,
                "LOG_LEVEL": "WARNING",
            }
        )
        with app.app_context():
            Base.metadata.create_all(db.engine())
            session = db.session()
            lines = store_day_and_subscribers(session, items, subscribers)
            started = time.perf_counter()
            needed = papers_to_translate(session, LISTING_DATE, settings(app))
            planning = time.perf_counter() - started
            started = time.perf_counter()
            first = translate_day(session, settings(app), LISTING_DATE)
            first_run = time.perf_counter() - started
            started = time.perf_counter()
            second = translate_day(session, settings(app), LISTING_DATE)
            second_run = time.perf_counter() - started
            requests_made = -(-len(needed) // settings(app).TRANSLATION_BATCH_SIZE)
    started = time.perf_counter()
    with requests.Session() as http:
        for _ in range(requests_made):
            http.post(f"{url}/chat/completions", json={}, timeout=10)
    bare = time.perf_counter() - started
    server.shutdown()
    server.server_close()
    print(f"job: {len(items)} papers, {subscribers} bilingual subscribers, {lines} distinct lines")
    print(
        f"  planning (match + sections)    {planning * 1000:8.1f} ms  -> {len(needed)} papers needed"
    )
    print(f"  {requests_made} bare POSTs (baseline)       {bare * 1000:8.1f} ms")
    print(f"  first run                      {first_run * 1000:8.1f} ms  ({first})")
    print(f"  second run (all cached)        {second_run * 1000:8.1f} ms  ({second})")


def store_day_and_subscribers(session, items, subscribers: int) -> int:
    for item in items:
        session.add(Paper(listing_date=LISTING_DATE, **paper_fields(item)))
    session.add(
        ListingDay(listing_date=LISTING_DATE, completed_at=db.utcnow() - timedelta(minutes=1))
    )
    phrases = Counter()
    for item in items:
        words = re.findall(r"[a-z][a-z-]+", item.title.lower())
        phrases.update(" ".join(words[i : i + 2]) for i in range(len(words) - 1))
    pool = [p for p, n in phrases.most_common(600) if n >= 2]
    rng = random.Random(5)
    used = set()
    for n in range(subscribers):
        chosen = rng.sample(pool, rng.randint(1, 4))
        used.update(chosen)
        session.add(
            Subscriber(
                email=f"r{n}@example.org",
                email_key=f"r{n}@example.org",
                status=SubscriberStatus.CONFIRMED,
                language="en+zh",
                include_replacements=n % 3 == 0,
                keywords=[Keyword(position=i, text=line) for i, line in enumerate(chosen)],
            )
        )
    session.commit()
    assert session.scalar(select(Paper.id).limit(1)) is not None
    return len(used)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    args = parser.parse_args()
    items = parse_feed(FEED.read_bytes()).items
    bench_placeholders([text for item in items for text in (item.title, item.abstract)])
    bench_job(items, args.subscribers)


if __name__ == "__main__":
    main()
