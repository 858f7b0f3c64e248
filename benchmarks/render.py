"""Benchmark: render a real full arXiv day's digests through the digest core.

Run: python benchmarks/render.py [--population titles|zipf] [--subscribers N] [--seed 1]

Papers: the real 1,504-item feed of 2024-11-28 (tests/data). Two synthetic
populations:

- titles (default 10,000): 1-5 keyword lines drawn by frequency from the
  feed's title phrases (three in four two-word phrases, one in four single
  words), 10% also a `cat:` line, 10% bilingual, 4 time zones;
- zipf (default 100,000): scale.py's subscribers: 5 lines each, drawn
  Zipf-like from 30,000 distinct 1-3-word phrases of the day's titles and
  abstracts that find a new or cross-listed paper (scale.py's `day_phrases`),
  1% bilingual, 4 time zones. (Before 2026-11-26 23:05 the phrases were not
  filtered, so about a quarter of a reader's lines found nothing and digests
  were lighter: figures before then are ~30% under this population's.)

The day has no translations, so bilingual entries carry the "not available"
note. Readers are streamed in batches of 1,000 (sections, then one email
each, with its own links), as a worker drains a day: peak RSS is printed as
the population grows, to show it flat. Measured in the same run:

- core: `DayDigest.sections` + `render_email` per reader, one DayDigest for
  the day (fragments rendered once, then assembled), from cold caches;
- baseline: the same digests of a sample of 200 readers, each on a fresh
  DayDigest (every entry rendered for every digest, as before fragments).

Prints ms per digest (wall and CPU: the machine may be shared), KB of HTML
and peak memory (max RSS).

First, on a DayDigest of its own, the figure benchmarks/scale.py reports
(`render CPU ms per digest, amortized`), taken the same way: a cold sample
of `--sample` readers (it pays the day's one-time work), then a disjoint warm
sample; one-time = cold - warm rate x sample, amortized = warm + one-time x
2 workers / subscribers. Sections are made outside the timing (scale.py reads
them from the ledger). As in a worker's drain (worker/delivery/sending.py),
the cyclic GC is settled after every DELIVERY_BATCH_SIZE digests
(worker/delivery/collector.py), inside the timing. `--sample-only` stops
after it.
"""

import argparse
import random
import re
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import day_phrases  # noqa: E402

from newsletter.config import load_settings  # noqa: E402
from newsletter.models import Paper  # noqa: E402
from worker.arxiv.feeds import parse_feed  # noqa: E402
from worker.arxiv.store import paper_fields  # noqa: E402
from worker.delivery.collector import settled_heap  # noqa: E402
from worker.digest.core import DayDigest, Reader  # noqa: E402

FEED = ROOT / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
LISTING_DATE = date(2024, 11, 28)
GENERATED = datetime(2024, 11, 28, 6, 0, tzinfo=UTC)
CONFIG = replace(
    load_settings({}, ".", dev=True), DIGEST_MAX_PER_KEYWORD=25, TRANSLATION_LANGUAGE="zh"
)
TIMEZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai"]
BATCH = 1_000
STOPWORDS = set(
    "a an the of for and in on with to from by via at as is are be we our its their this that "
    "using based towards toward into over under new between through".split()
)


def load_papers() -> dict[str, Paper]:
    feed = parse_feed(FEED.read_bytes())
    return {
        item.arxiv_id: Paper(listing_date=LISTING_DATE, **paper_fields(item)) for item in feed.items
    }


def title_readers(n: int, papers: dict[str, Paper], rng: random.Random):
    """The titles population (see the module docstring)."""
    counts: Counter = Counter()
    for paper in papers.values():
        words = re.findall(r"[a-z][a-z-]+[a-z]", paper.title.lower())
        for size in (1, 2):
            for i in range(len(words) - size + 1):
                gram = words[i : i + size]
                if gram[0] not in STOPWORDS and gram[-1] not in STOPWORDS:
                    counts[" ".join(gram)] += 1
    pools = {}
    for size in (1, 2):
        pool = [(p, c) for p, c in counts.items() if c >= 3 and len(p.split()) == size]
        pools[size] = tuple(zip(*pool, strict=True))
    categories = sorted({c for p in papers.values() for c in p.categories})
    for _ in range(n):
        keywords = []
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 5])):
            population, weights = pools[1 if rng.random() < 0.25 else 2]
            keywords.append(rng.choices(population, weights)[0])
        keywords = list(dict.fromkeys(keywords))
        if rng.random() < 0.1:
            keywords.append(f"cat:{rng.choice(categories)}")
        language = "en+zh" if rng.random() < 0.1 else "en"
        yield Reader(tuple(keywords), language, rng.choice(TIMEZONES), False)


def zipf_readers(n: int, papers: dict[str, Paper], rng: random.Random, distinct: int = 30_000):
    """The zipf population (see the module docstring): scale.py's, line for line.

    Its phrases are scale.py's `day_phrases`: only lines that find a new or
    cross-listed paper of the day, as the issue's subscribers' do (a line that
    finds only replacements makes no section, and a lighter digest).
    """
    phrases = day_phrases(distinct, rng)
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(phrases))]
    for number in range(n):
        lines: dict[str, None] = {}
        while len(lines) < 5:
            for line in rng.choices(phrases, weights, k=5 - len(lines)):
                lines.setdefault(line)
        language = "en+zh" if number % 100 == 0 else "en"
        yield Reader(tuple(lines), language, TIMEZONES[number % 4], False)


def links_for(number: int) -> dict[str, str]:
    token = f"{number:032x}-token"
    return {
        "manage_url": f"https://digest.example/manage/{token}",
        "unsubscribe_url": f"https://digest.example/unsubscribe/{token}",
        "one_click_url": f"https://digest.example/unsubscribe/one-click/{token}",
        "view_url": f"https://digest.example/digest/{token}",
        "feed_url": f"https://digest.example/feed/{token}",
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def amortized_render(
    papers: dict[str, Paper], readers, sample: int, subscribers: int, workers: int = 2
) -> None:
    """Print scale.py's render figure for `readers` (see the module docstring)."""
    chosen = [reader for _, reader in zip(range(2 * sample), readers, strict=False)]
    day = DayDigest.from_rows(LISTING_DATE, papers, {}, CONFIG)
    sections = day.sections(dict(enumerate(chosen)))
    timings = []
    batch = CONFIG.DELIVERY_BATCH_SIZE
    # As a worker's drain: the cyclic GC settled after each batch (its cost timed too).
    with settled_heap() as settle:
        for numbers in (range(sample), range(sample, len(chosen))):
            work = [(chosen[n], sections[n], links_for(n)) for n in numbers if sections[n]]
            started = time.process_time()
            for done, (reader, reader_sections, links) in enumerate(work, start=1):
                day.render_email(reader, reader_sections, GENERATED, links)
                if done % batch == 0:
                    settle()
            timings.append((len(work), time.process_time() - started))
    (cold_n, cold), (warm_n, warm) = timings
    warm_ms = 1000 * warm / warm_n
    one_time_ms = max(0.0, 1000 * cold - warm_ms * cold_n)
    amortized = warm_ms + one_time_ms * workers / subscribers
    print(
        f"scale.py's figure: cold {1000 * cold / cold_n:.3f} / warm {warm_ms:.3f} ms CPU per digest,"
        f" one-time {one_time_ms / 1000:.2f} s per process;"
        f" amortized over {subscribers} / {workers} workers: {amortized:.3f} ms;"
        f" peak RSS {peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", choices=("titles", "zipf"), default="titles")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=1000, help="readers per sample (scale.py's)")
    parser.add_argument("--sample-only", action="store_true", help="only scale.py's figure")
    args = parser.parse_args()
    count = args.subscribers or (10_000 if args.population == "titles" else 100_000)

    papers = load_papers()
    make = title_readers if args.population == "titles" else zipf_readers
    print(f"{len(papers)} papers, {count} readers ({args.population}); rss {peak_rss_mb():.0f} MB")
    amortized_render(papers, make(count, papers, random.Random(args.seed)), args.sample, count)
    if args.sample_only:
        return
    readers = make(count, papers, random.Random(args.seed))

    day = DayDigest.from_rows(LISTING_DATE, papers, {}, CONFIG)
    sample: list[tuple[Reader, list]] = []
    sizes: list[int] = []
    section_seconds = render_seconds = render_cpu = 0.0
    done = mailed = 0
    # As a worker's drain: the cyclic GC settled after each batch (its cost timed too).
    with settled_heap() as settle:
        while done < count:
            batch = {done + k: reader for k, reader in zip(range(BATCH), readers, strict=False)}
            done += len(batch)
            started = time.perf_counter()
            sections = day.sections(batch)
            section_seconds += time.perf_counter() - started
            links = {number: links_for(number) for number in batch}
            emails = []
            started, cpu = time.perf_counter(), time.process_time()
            for number, reader in batch.items():
                if sections[number]:
                    emails.append(
                        day.render_email(reader, sections[number], GENERATED, links[number])
                    )
                    if len(emails) % CONFIG.DELIVERY_BATCH_SIZE == 0:
                        settle()
            render_seconds += time.perf_counter() - started
            render_cpu += time.process_time() - cpu
            mailed += len(emails)
            # Outside the timing: a worker hands the segments to MIME, never joins them.
            sizes += [len(email.html.encode()) for email in emails[::10]]
            for number, reader in batch.items():
                if sections[number] and len(sample) < 200 and number % 7 == 0:
                    sample.append((reader, sections[number]))
            if done % (count // 10 or 1) == 0 or done == count:
                print(
                    f"  {done:>7} readers: {1000 * render_seconds / max(mailed, 1):.3f} ms"
                    f" ({1000 * render_cpu / max(mailed, 1):.3f} ms CPU) per digest so far,"
                    f" peak RSS {peak_rss_mb():.0f} MB"
                )

    started = time.process_time()
    for number, (reader, reader_sections) in enumerate(sample):
        fresh = DayDigest.from_rows(LISTING_DATE, papers, {}, CONFIG)
        fresh.render_email(reader, reader_sections, GENERATED, links_for(number))
    baseline_cpu = time.process_time() - started

    print(f"sections (matching each distinct line once): {section_seconds:.1f} s")
    print(
        f"core: {mailed} digests in {render_seconds:.1f} s, "
        f"{1000 * render_seconds / mailed:.3f} ms ({1000 * render_cpu / mailed:.3f} ms CPU) per digest"
    )
    print(
        f"baseline, {len(sample)} digests each on a fresh day: "
        f"{1000 * baseline_cpu / len(sample):.2f} ms CPU per digest"
    )
    print(
        f"HTML KB (every 10th digest): median {statistics.median(sizes) / 1024:.1f}, "
        f"p95 {sorted(sizes)[int(0.95 * len(sizes))] / 1024:.1f}, max {max(sizes) / 1024:.1f}"
    )
    print(f"peak memory (max RSS): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
