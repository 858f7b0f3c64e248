"""The bundled demo listing date (2026-05-29), loaded by `newsletter dev`.

`load_demo` stores the 66 papers of the predecessor tool's sample digest as
Paper rows, their recorded Chinese translations as Translation rows and a
finished ListingDay, so a new dev user who subscribes with "reinforcement
learning" and "diffusion policy" gets that digest without network or API key.

The JSON it reads (newsletter/data/demo_2026-05-29.json) was extracted once
from the sample digest by tools/extract_sample_digest.py, run by hand, and its
Chinese was then repaired once by `python -m worker.demo.repair`. Nothing here
reads the sample; see newsletter/data/README.md.
"""

import json
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
