"""Benchmark keyword matching for a full day: 100,000 synthetic subscribers.

Run by hand: `python benchmarks/match.py [--subscribers N] [--distinct N]`.
Keywords are drawn from phrases of the real 1,504-item day (tests/data): title
and abstract 1-3-grams by frequency, plus lines with cat:, au: and exclusions.
Each subscriber has 1-8 lines (popular lines shared, Zipf-like) and together
they use ~30,000 distinct lines. Timed: `match_papers` over the day, then the
per-subscriber sections (each paper once, under its first matching keyword).
Baseline, in the same run: one regex per keyword line scanning every paper,
timed on a sample of lines and extrapolated to all distinct lines.
"""

import argparse
import random
import re
import resource
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from worker.arxiv.feeds import parse_feed
from worker.digest.matching import KeywordError, parse_keyword
from worker.digest.selection import match_papers

FEED = Path(__file__).resolve().parents[1] / "tests" / "data" / "rss_all-archives_2024-11-28.xml"
STOPWORDS = set(
    "a an and are as at be by for from has have in is it its of on or our that the their this"
    " to we which with via using based these than can not new two one".split()
)


def ngrams(text: str, counter: Counter) -> None:
    words = re.findall(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", text.lower())
    for n in (1, 2, 3):
        for k in range(len(words) - n + 1):
            gram = words[k : k + n]
            if gram[0] not in STOPWORDS and gram[-1] not in STOPWORDS and len(gram[-1]) > 2:
                counter[" ".join(gram)] += 1


def keyword_pool(items, distinct: int, rng: random.Random) -> list[str]:
    """Distinct valid lines: ~80% phrases, then cat:, au: and exclusion lines."""
    titles, abstracts = Counter(), Counter()
    for item in items:
        ngrams(item.title, titles)
        ngrams(item.abstract, abstracts)
    phrases = [g for g, _ in titles.most_common()]
    phrases += [g for g, n in abstracts.most_common() if n >= 2 and g not in titles]
    phrases = phrases[: int(distinct * 0.8)]
    categories = sorted({c for item in items for c in item.categories})
    archives = sorted({c.split(".")[0] for c in categories})
    names = sorted({a for item in items for a in item.authors if re.fullmatch(r"[\w .'-]+", a)})
    head = phrases[:2000]
    lines = set(phrases)
    while len(lines) < distinct:
        kind = rng.random()
        if kind < 0.4:
            line = f"{rng.choice(head)} cat:{rng.choice(categories + archives)}"
        elif kind < 0.55:
            line = f"cat:{rng.choice(categories)}"
        elif kind < 0.75:
            name = rng.choice(names)
            line = f'au:"{name}"' if rng.random() < 0.5 else f"au:{name.split()[-1]}"
        else:
            line = f"{rng.choice(head)} -{rng.choice(phrases[:500]).split()[0]}"
        lines.add(line)
    valid = []
    for line in sorted(lines):
        try:
            parse_keyword(line)
        except KeywordError:
            continue
        valid.append(line)
    return valid


def subscribers(pool: list[str], count: int, rng: random.Random) -> list[list[str]]:
    """1-8 lines each; every pool line used at least once, popular ones shared."""
    sizes = [rng.randint(1, 8) for _ in range(count)]
    shuffled = rng.sample(pool, len(pool))
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(pool))]
    draws = shuffled + rng.choices(shuffled, weights, k=max(0, sum(sizes) - len(pool)))
    result, position = [], 0
    for size in sizes:
        result.append(list(dict.fromkeys(draws[position : position + size])))
        position += size
    return result


def sections(subscriber_lines: list[list[str]], matched: dict[str, frozenset[str]]):
    """Per subscriber: (line, papers in full, papers listed by title only)."""
    total_entries = mailed = 0
    for lines in subscriber_lines:
        seen: set[str] = set()
        digest = []
        for line in lines:
            papers = matched[line]
            if papers:
                digest.append((line, papers - seen, papers & seen))
                seen |= papers
        total_entries += len(seen)
        mailed += bool(digest)
    return mailed, total_entries


def naive_regex(line: str) -> re.Pattern | None:
    """The obvious per-keyword approach: a case-insensitive regex on raw text."""
    if ":" in line or " -" in line:
        return None
    words = [re.escape(w) for w in line.split()]
    words[-1] += "(?:s|es)?"
    return re.compile(r"\b" + r"[\s_-]+".join(words) + r"\b", re.IGNORECASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=30_000)
    parser.add_argument("--baseline-sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20241128)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    items = parse_feed(FEED.read_bytes()).items
    pool = keyword_pool(items, args.distinct, rng)
    subs = subscribers(pool, args.subscribers, rng)
    lines_total = sum(len(lines) for lines in subs)
    distinct = list(dict.fromkeys(line for lines in subs for line in lines))
    print(
        f"papers {len(items)}  subscribers {len(subs)}  subscriber lines {lines_total}"
        f"  distinct lines {len(distinct)}"
    )

    started = time.perf_counter()
    matched = match_papers(items, distinct)
    match_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mailed, entries = sections(subs, matched)
    sections_seconds = time.perf_counter() - started
    hits = sum(len(v) for v in matched.values())
    print(f"match_papers        {match_seconds:7.2f} s  ({hits} line-paper matches)")
    print(f"subscriber sections {sections_seconds:7.2f} s  ({mailed} digests, {entries} entries)")
    print(f"total               {match_seconds + sections_seconds:7.2f} s")

    tracemalloc.start()
    match_papers(items, distinct)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak Python memory in match_papers {peak / 2**20:.0f} MiB (tracemalloc);"
        f" process max RSS {maxrss_mb:.0f} MiB"
    )

    texts = [(item.arxiv_id, f"{item.title}\n{item.abstract}") for item in items]
    phrase_lines = [line for line in distinct if naive_regex(line)]
    sample = rng.sample(phrase_lines, min(args.baseline_sample, len(phrase_lines)))
    started = time.perf_counter()
    naive = {}
    for line in sample:
        pattern = naive_regex(line)
        naive[line] = {arxiv_id for arxiv_id, text in texts if pattern.search(text)}
    per_line = (time.perf_counter() - started) / len(sample)
    agree = sum(naive[line] == matched[line] for line in sample)
    print(
        f"baseline: one regex per line over all papers, {per_line * 1000:.1f} ms per line"
        f" ({len(sample)} sampled lines)"
    )
    print(
        f"  -> {per_line * len(distinct):7.1f} s for the {len(distinct)} distinct lines"
        f" ({per_line * len(distinct) / (match_seconds + sections_seconds):.0f}x ours)"
    )
    print(f"  -> {per_line * lines_total:7.1f} s per subscriber line ({lines_total} lines)")
    print(
        f"  same papers as ours on {agree}/{len(sample)} sampled lines"
        " (it misses -ies plurals, TeX accents, words joined by _)"
    )


if __name__ == "__main__":
    main()
