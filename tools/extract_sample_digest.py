"""Extract the demo listing date from the predecessor tool's sample digest (a one-off, by hand).

Not part of the runtime packages: it made newsletter/data/demo_2026-05-29.json
once, from the plain-text sample digest 000_4afde73b54c9cead.txt (kept outside
the repository), and nothing runs it since. It was run, from the repository
root, as

    python tools/extract_sample_digest.py SAMPLE.txt > newsletter/data/demo_2026-05-29.json
    python -m worker.demo.repair

(the second line repairs the recorded Chinese; see worker/demo/repair.py).
Those two lines rebuild the bundled file's papers exactly, which is why the
extractor is kept: the file's provenance stays reproducible.
"""

import json
import re
import sys
from pathlib import Path

from worker.demo.load import DEMO_LISTING_DATE

_CATEGORY_CODE = re.compile(r"\(([a-z-]+(?:\.[A-Za-z-]+)?)\)\s*$")


def parse_sample_digest(text: str) -> dict:
    """The demo listing (papers once each, in order) from the sample digest's text."""
    lines = text.splitlines()
    papers: dict[str, dict] = {}
    i = 0
    while i < len(lines):
        if not lines[i].startswith("- Authors: "):
            i += 1
            continue
        # Each entry: title, Chinese title, then these fixed lines.
        title, zh_title = lines[i - 2], lines[i - 1]
        authors = lines[i].removeprefix("- Authors: ")
        assert lines[i + 1] == "- Subjects: Subjects:", lines[i + 1]
        subjects = lines[i + 2]
        abs_link = lines[i + 3].removeprefix("- Arxiv link: ")
        assert lines[i + 4].startswith("- Pdf link: ") and lines[i + 5] == "- Abstract"
        abstract = lines[i + 6]
        assert lines[i + 7] == "- 中文摘要", lines[i + 7]
        zh_abstract = lines[i + 8]
        arxiv_id = abs_link.removeprefix("https://arxiv.org/abs/")
        categories = []
        for subject in subjects.split(";"):
            match = _CATEGORY_CODE.search(subject)
            assert match, subject
            categories.append(match.group(1))
        record = {
            "arxiv_id": arxiv_id,
            "version": 1,
            "title": title,
            "authors": [a.strip() for a in authors.split(",")],
            "categories": categories,
            "abstract": abstract,
            "announce_type": "new",
            "zh": {"title": zh_title, "abstract": zh_abstract},
        }
        if arxiv_id in papers:
            # The sample prints a paper matching two keywords twice; keep it once.
            assert papers[arxiv_id] == record, arxiv_id
        papers[arxiv_id] = record
        i += 9
    return {
        "listing_date": DEMO_LISTING_DATE.isoformat(),
        "source": (
            "Sample digest of a predecessor tool (keywords 'reinforcement learning', "
            "'diffusion policy'), listing date Fri 2026-05-29: real arXiv metadata; "
            "Chinese texts are real machine translations kept as recorded, defects "
            "included (see README.md)."
        ),
        "papers": list(papers.values()),
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/extract_sample_digest.py SAMPLE.txt > demo.json")
    demo = parse_sample_digest(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(demo, ensure_ascii=False, indent=1))
