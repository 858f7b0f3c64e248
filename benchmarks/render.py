"""Benchmark: render 10,000 digests of a real full arXiv day.

Run: python benchmarks/render.py [--subscribers 10000] [--seed 1]

Synthetic subscribers get 1-5 keyword lines drawn (by frequency) from the
title phrases of the real 1,504-item feed of 2024-11-28 (tests/data): three
in four two-word phrases, one in four single words; 10% also a `cat:` line;
10% are bilingual (no translations exist for that day, so their
entries carry the "not available" note). Matching runs once for all distinct
lines (worker.matching), then per subscriber: assign_sections + render_digest
(+ personalize). Measured in the same run:

- shared: subscribers with identical (keywords, language, timezone, sections)
  share one render made with placeholder links, then `personalize`;
- unshared: every subscriber rendered on its own with its real links;
- baseline: MJML compiled per message (the compile-once cache cleared before
  each render), for a sample of 50 subscribers.

Prints ms per digest, KB of HTML and peak memory (max RSS).
"""

import argparse
import random
import re
import resource
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emails  # noqa: E402
from newsletter.models import Paper  # noqa: E402
from worker import digest_entries, digest_text  # noqa: E402
from worker.arxiv import parse_feed  # noqa: E402
from worker.digest import PLACEHOLDER_LINKS, assign_sections, personalize, render_digest  # noqa: E402
from worker.ingest_store import paper_fields  # noqa: E402
from worker.matching import match_papers  # noqa: E402

FEED = ROOT / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
LISTING_DATE = date(2024, 11, 28)
GENERATED = datetime(2024, 11, 28, 6, 0, tzinfo=UTC)
TIMEZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai"]
STOPWORDS = set(
    "a an the of for and in on with to from by via at as is are be we our its their this that "
    "using based towards toward into over under new between through".split()
)


def load_papers() -> dict[str, Paper]:
    feed = parse_feed(FEED.read_bytes())
    return {
        item.arxiv_id: Paper(listing_date=LISTING_DATE, **paper_fields(item)) for item in feed.items
    }


def phrases_from(papers: dict[str, Paper]) -> Counter:
    """1- and 2-word phrases of the titles (no stopwords at the edges), by frequency."""
    counts: Counter = Counter()
    for paper in papers.values():
        words = re.findall(r"[a-z][a-z-]+[a-z]", paper.title.lower())
        for n in (1, 2):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                    continue
                counts[" ".join(gram)] += 1
    return Counter({p: c for p, c in counts.items() if c >= 3})


def make_subscribers(n: int, phrases: Counter, papers: dict[str, Paper], seed: int) -> list[dict]:
    rng = random.Random(seed)
    # Real subscribers mostly follow phrases ("graph neural"), some single words ("quantum").
    pools = {
        size: [(p, c) for p, c in phrases.items() if len(p.split()) == size] for size in (1, 2)
    }
    pools = {size: tuple(zip(*pool, strict=True)) for size, pool in pools.items()}
    categories = sorted({c for p in papers.values() for c in p.categories})
    subscribers = []
    for number in range(n):
        count = rng.choice([1, 1, 2, 2, 3, 4, 5])
        keywords = []
        for _ in range(count):
            population, weights = pools[1 if rng.random() < 0.25 else 2]
            keywords.append(rng.choices(population, weights)[0])
        keywords = list(dict.fromkeys(keywords))
        if rng.random() < 0.1:
            keywords.append(f"cat:{rng.choice(categories)}")
        subscribers.append(
            {
                "public_id": f"{number:032x}",
                "keywords": keywords,
                "language": "en+zh" if rng.random() < 0.1 else "en",
                "timezone": rng.choice(TIMEZONES),
            }
        )
    return subscribers


def clear_caches() -> None:
    for cached in (digest_entries._readable, digest_entries._highlight, digest_text.wrap_text):
        cached.cache_clear()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def links_for(subscriber: dict) -> dict[str, str]:
    token = subscriber["public_id"] + "-token"
    return {
        "manage_url": f"https://digest.example/manage/{token}",
        "unsubscribe_url": f"https://digest.example/unsubscribe/{token}",
        "one_click_url": f"https://digest.example/unsubscribe/one-click/{token}",
        "view_url": f"https://digest.example/digest/{token}",
    }


def render_one(subscriber, sections, papers, links):
    return render_digest(
        listing_date=LISTING_DATE,
        sections=sections,
        papers=papers,
        translations={},
        language=subscriber["language"],
        timezone=subscriber["timezone"],
        keywords=subscriber["keywords"],
        generated_at=GENERATED,
        links=links,
        max_per_keyword=25,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    papers = load_papers()
    phrases = phrases_from(papers)
    subscribers = make_subscribers(args.subscribers, phrases, papers, args.seed)
    lines = {line for s in subscribers for line in s["keywords"]}
    print(
        f"{len(papers)} papers, {len(phrases)} phrases, {len(subscribers)} subscribers, "
        f"{len(lines)} distinct keyword lines"
    )

    started = time.perf_counter()
    matches = match_papers(list(papers.values()), lines)
    for subscriber in subscribers:
        subscriber["sections"] = assign_sections(subscriber["keywords"], matches, papers, False)
    print(f"match + sections: {time.perf_counter() - started:.2f} s")
    receiving = [s for s in subscribers if s["sections"]]
    print(f"{len(receiving)} subscribers with at least one paper (the rest get no email)")

    # Each mode starts with cold per-process caches (TeX, highlights, wrapping).
    # Shared: subscribers grouped by identical digest; one render per group
    # with placeholder links, then personalize per subscriber.
    clear_caches()
    started = time.perf_counter()
    groups: dict = defaultdict(list)
    for subscriber in receiving:
        key = (
            tuple(subscriber["keywords"]),
            subscriber["language"],
            subscriber["timezone"],
            repr(subscriber["sections"]),
        )
        groups[key].append(subscriber)
    sizes = []
    for members in groups.values():
        shared = render_one(members[0], members[0]["sections"], papers, PLACEHOLDER_LINKS)
        for subscriber in members:
            rendered = personalize(shared, links_for(subscriber))
            sizes.append(len(rendered.html.encode()))
    shared_seconds = time.perf_counter() - started
    shared_rss = peak_rss_mb()

    # Unshared: every subscriber rendered on its own.
    clear_caches()
    started = time.perf_counter()
    for subscriber in receiving:
        render_one(subscriber, subscriber["sections"], papers, links_for(subscriber))
    unshared_seconds = time.perf_counter() - started

    # Baseline: MJML compiled for every message (sample of 50).
    sample = receiving[:50]
    started = time.perf_counter()
    for subscriber in sample:
        emails._html_env.cache_clear()
        render_one(subscriber, subscriber["sections"], papers, links_for(subscriber))
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for subscriber in sample:
        render_one(subscriber, subscriber["sections"], papers, links_for(subscriber))
    cached_sample_seconds = time.perf_counter() - started

    n = len(receiving)
    per = lambda seconds, count: 1000 * seconds / count  # noqa: E731
    print(f"shared renders: {len(groups)} distinct digests for {n} subscribers")
    print(
        f"  shared   : {shared_seconds:7.1f} s total, {per(shared_seconds, n):6.2f} ms per digest"
    )
    print(
        f"  unshared : {unshared_seconds:7.1f} s total, {per(unshared_seconds, n):6.2f} ms per digest "
        f"(sharing x{unshared_seconds / shared_seconds:.1f})"
    )
    print(
        f"  sample of {len(sample)}: compile MJML per message {per(baseline_seconds, len(sample)):.1f} ms, "
        f"compiled once {per(cached_sample_seconds, len(sample)):.1f} ms per digest "
        f"(x{baseline_seconds / cached_sample_seconds:.1f})"
    )
    print(
        f"HTML KB: median {statistics.median(sizes) / 1024:.1f}, "
        f"p95 {sorted(sizes)[int(0.95 * len(sizes))] / 1024:.1f}, max {max(sizes) / 1024:.1f} "
        f"(limit 102)"
    )
    print(
        f"peak memory (max RSS): {shared_rss:.0f} MB after the shared run, {peak_rss_mb():.0f} MB at the end"
    )


if __name__ == "__main__":
    main()
