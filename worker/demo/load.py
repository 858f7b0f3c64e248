"""The bundled demo listing date (2026-05-29), loaded by `newsletter dev`.

`load_demo` stores the 66 papers of the predecessor tool's sample digest as
Paper rows, their recorded Chinese translations as Translation rows and a
finished ListingDay, so a new dev user who subscribes with "reinforcement
learning" and "diffusion policy" gets that digest without network or API key.

The JSON it reads (newsletter/data/demo_2026-05-29.json) was extracted once
from the sample digest by `parse_sample_digest`, run by hand:

    python -m worker.demo.load extract SAMPLE.txt > newsletter/data/demo_2026-05-29.json

and its Chinese was then repaired once by `python -m worker.demo.repair`.
Nothing here reads the sample at run time; see newsletter/data/README.md.
"""

import json
import re
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import (
    AnnounceType,
    ListingDay,
    Paper,
    Translation,
    TranslationStatus,
)

DEMO_LISTING_DATE = date(2026, 5, 29)
DEMO_PATH = Path(__file__).resolve().parents[2] / "newsletter" / "data" / "demo_2026-05-29.json"
RECORDED_MODEL = "recorded (sample digest)"


def read_demo(path: Path = DEMO_PATH) -> dict:
    """The demo listing as stored in the package (see module docstring)."""
    return json.loads(path.read_text(encoding="utf-8"))


def load_demo(session: Session) -> date:
    """Store the demo papers, translations and listing day; idempotent, caller commits."""
    demo = read_demo()
    listing_date = date.fromisoformat(demo["listing_date"])
    ids = [p["arxiv_id"] for p in demo["papers"]]
    papers = {p.arxiv_id: p for p in session.scalars(select(Paper).where(Paper.arxiv_id.in_(ids)))}
    translations = {
        (t.arxiv_id, t.version): t
        for t in session.scalars(
            select(Translation).where(Translation.arxiv_id.in_(ids), Translation.language == "zh")
        )
    }
    for record in demo["papers"]:
        paper = papers.get(record["arxiv_id"])
        if paper is None:
            paper = Paper(arxiv_id=record["arxiv_id"])
            session.add(paper)
        paper.version = record["version"]
        paper.title = record["title"]
        paper.authors = record["authors"]
        paper.categories = record["categories"]
        paper.abstract = record["abstract"]
        paper.comments = record.get("comments")
        paper.doi = record.get("doi")
        paper.journal_ref = record.get("journal_ref")
        paper.listing_date = listing_date
        paper.announce_type = AnnounceType(record["announce_type"])

        key = (record["arxiv_id"], record["version"])
        translation = translations.get(key)
        if translation is None:
            translation = Translation(arxiv_id=key[0], version=key[1], language="zh")
            session.add(translation)
        translation.status = TranslationStatus.DONE
        translation.title = record["zh"]["title"]
        translation.abstract = record["zh"]["abstract"]
        translation.model = RECORDED_MODEL
        translation.error = None

    day = session.get(ListingDay, listing_date)
    if day is None:
        day = ListingDay(listing_date=listing_date)
        session.add(day)
    now = utcnow()
    day.completed_at = day.completed_at or now
    day.translated_at = day.translated_at or now
    session.flush()
    return listing_date


# --- one-off extraction from the sample digest (run by hand, never at run time) ---

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
    if len(sys.argv) != 3 or sys.argv[1] != "extract":
        sys.exit("usage: python -m worker.demo.load extract SAMPLE.txt > demo.json")
    demo = parse_sample_digest(Path(sys.argv[2]).read_text(encoding="utf-8"))
    print(json.dumps(demo, ensure_ascii=False, indent=1))
