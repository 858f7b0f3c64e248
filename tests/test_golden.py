"""Golden digests: the emails and pages the digest path renders, kept byte for byte.

Refactors of the digest path (sections, rendering, sending) must not change
what a subscriber reads. These tests render the demo day for its English and
bilingual subscribers, and 200 seeded subscribers of the full day of
2024-11-28 (1,504 papers), as email (subject, text, HTML) and as the "view in
browser" page, with fixed links and a fixed generated minute, and compare the
SHA-256 of each with tests/data/golden/digests.json.

On a mismatch the rendered outputs are written to the test's tmp folder, and
the demo day's expected outputs are in tests/data/golden/ for diffing.
An intended change of output is recorded with `GOLDEN_UPDATE=1 pytest
tests/test_golden.py`, and the commit says why the output changed.
"""

import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from test_digest import full_day, sample

from newsletter.config import load_settings
from worker.demo.load import DEMO_LISTING_DATE
from worker.digest.core import DayDigest, Reader
from worker.digest.matching import tokenize

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
FULL_DAY = date(2024, 11, 28)
GENERATED = datetime(2026, 5, 29, 11, 33, tzinfo=UTC)
ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Sydney"]
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"


def links(name: str) -> dict[str, str]:
    base = "https://digest.example.org"
    return {
        "manage_url": f"{base}/manage/manage-{name}",
        "unsubscribe_url": f"{base}/unsubscribe/unsubscribe-{name}",
        "one_click_url": f"{base}/unsubscribe/one-click/unsubscribe-{name}",
        "view_url": f"{base}/digest/view-{name}",
        "feed_url": f"{base}/feed/feed-{name}",
    }


def full_day_readers() -> dict[str, Reader]:
    """200 seeded subscribers: 1-5 lines from the day's own title phrases, some broad."""
    counts: Counter[str] = Counter()
    for paper in full_day().values():
        words = [word for word, _, _ in tokenize(paper.title)]
        counts.update(" ".join(words[i : i + n]) for n in (1, 2) for i in range(len(words)))
    common = [phrase for phrase, n in counts.most_common(3000) if n >= 2 and len(phrase) > 3]
    extra = ["cat:cs.RO", "cat:hep-th", "au:Wang", "transformer -vision", '"neural network"']
    rng = random.Random(20241128)
    readers = {}
    for n in range(200):
        lines = rng.sample(common[:300] if n % 4 == 0 else common, rng.randint(1, 5))
        if n % 7 == 0:
            lines.append(rng.choice(extra))
        readers[f"full-{n:03d}"] = Reader(
            keywords=tuple(dict.fromkeys(lines)),
            language="en+zh" if n % 10 == 3 else "en",
            timezone=ZONES[n % len(ZONES)],
            include_replacements=n % 3 == 0,
        )
    return readers


def demo_readers() -> dict[str, Reader]:
    keywords = ("reinforcement learning", "diffusion policy")
    return {
        f"demo-{language}-{zone.replace('/', '_')}": Reader(
            keywords, language, zone, include_replacements=False
        )
        for language in ("en", "en+zh")
        for zone in ("Asia/Shanghai", "UTC")
    } | {
        "demo-broad": Reader(("learning", "model", "robot"), "en", "UTC", False),
    }


def render_all(day: DayDigest, readers: dict[str, Reader]) -> dict[str, dict[str, str]]:
    """name -> {"subject", "text", "html", "page"} for each reader with a digest."""
    sections = day.sections(readers)
    outputs = {}
    for name, reader in readers.items():
        if not sections[name]:
            continue
        email = day.render_email(reader, sections[name], GENERATED, links(name))
        page = day.render_page(reader, sections[name], GENERATED, links(name))
        outputs[name] = {
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "page": page,
        }
    return outputs


def digests(output: dict[str, str]) -> dict[str, str]:
    return {part: hashlib.sha256(value.encode()).hexdigest() for part, value in output.items()}


def check(outputs: dict[str, dict[str, str]], tmp_path: Path, keep_files: bool) -> None:
    path = GOLDEN / "digests.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    actual = {name: digests(output) for name, output in outputs.items()}
    if UPDATE:
        stored.update(actual)
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
        if keep_files:
            for name, output in outputs.items():
                for part, value in output.items():
                    (GOLDEN / f"{name}.{part}").write_text(value, encoding="utf-8")
        return
    changed = []
    for name, output in outputs.items():
        if stored.get(name) != actual[name]:
            changed.append(name)
            for part, value in output.items():
                (tmp_path / f"{name}.{part}").write_text(value, encoding="utf-8")
    assert not changed, f"{len(changed)} digests changed ({changed[:5]}); outputs in {tmp_path}"
    assert set(outputs) == {name for name in stored if name.split("-")[0] in _prefixes(outputs)}


def _prefixes(outputs) -> set[str]:
    return {name.split("-")[0] for name in outputs}


def test_demo_day_digests_are_unchanged(tmp_path):
    papers, translations = sample()
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, GOLDEN_CONFIG)
    outputs = render_all(day, demo_readers())
    assert len(outputs) == 5
    check(outputs, tmp_path, keep_files=True)


def test_full_day_digests_of_200_subscribers_are_unchanged(tmp_path):
    day = DayDigest.from_rows(FULL_DAY, full_day(), {}, GOLDEN_CONFIG)
    outputs = render_all(day, full_day_readers())
    assert len(outputs) >= 180
    check(outputs, tmp_path, keep_files=False)


def test_digests_do_not_depend_on_what_the_caches_hold(tmp_path, monkeypatch):
    """Tiny caches (evicting all the time) and another order give the same bytes."""
    from worker.digest import fragments as digest_fragments

    for name in ("HIGHLIGHT_CACHE", "KEYWORD_CACHE", "SMALL_CACHE"):
        monkeypatch.setattr(digest_fragments, name, 3)
    papers, translations = sample()
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, GOLDEN_CONFIG)
    readers = dict(reversed(demo_readers().items()))
    check(render_all(day, readers), tmp_path, keep_files=False)
    day = DayDigest.from_rows(FULL_DAY, full_day(), {}, GOLDEN_CONFIG)
    readers = dict(reversed(list(full_day_readers().items())[::3]))
    outputs = render_all(day, readers)
    stored = json.loads((GOLDEN / "digests.json").read_text())
    assert outputs and all(digests(output) == stored[name] for name, output in outputs.items())


GOLDEN_CONFIG = replace(
    load_settings({}, ".", dev=True),
    DIGEST_MAX_PER_KEYWORD=25,
    TRANSLATION_LANGUAGE="zh",
    TRANSLATION_BACKEND="recorded",
)
