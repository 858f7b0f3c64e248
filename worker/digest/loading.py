"""A listing date's rows as a digest reads them: its papers, its late papers, their translations and TL;DRs.

Used by worker/digest/core.py (`DayDigest.load`), worker/digest/day_cache.py
(one day per process) and worker/delivery/late.py (the look-back window). Which
papers count as late, and why a digest carries them, is worker/digest/core.py's
module docstring; this module only reads them.
"""

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import ListingDay, Paper, Tldr, Translation, TranslationStatus
from worker import calendar

# Ids per IN (...) query, well under every backend's parameter limit.
_IN_BATCH = 500
# Listing dates before a digest's own whose late papers it may carry (a week).
LATE_LOOKBACK_DATES = 7


def load_day(session: Session, listing_date: date) -> dict[str, Paper]:
    """The papers announced for `listing_date`, and the late papers its digests may carry."""
    papers = session.scalars(select(Paper).where(Paper.listing_date == listing_date))
    found = {paper.arxiv_id: paper for paper in papers}
    found.update(load_late_papers(session, listing_date))
    return found


def load_span(session: Session, first: date, last: date) -> dict[str, Paper]:
    """The papers of the listing dates first..last (a weekly digest's), and the late papers it may carry."""
    papers = session.scalars(
        select(Paper).where(Paper.listing_date >= first, Paper.listing_date <= last)
    )
    found = {paper.arxiv_id: paper for paper in papers}
    found.update(load_late_papers(session, first))
    return found


def late_window_start(listing_date: date) -> date:
    """The first listing date whose late papers a digest of `listing_date` carries."""
    day = listing_date
    for _ in range(LATE_LOOKBACK_DATES):
        day = calendar.previous_listing_date(day)
    return day


def load_late_papers(session: Session, listing_date: date) -> dict[str, Paper]:
    """Papers of the look-back window stored after their own listing date completed."""
    papers = session.scalars(
        select(Paper)
        .join(ListingDay, ListingDay.listing_date == Paper.listing_date)
        .where(
            Paper.listing_date >= late_window_start(listing_date),
            Paper.listing_date < listing_date,
            ListingDay.completed_at.is_not(None),
            Paper.updated_at > ListingDay.completed_at,
        )
    )
    return {paper.arxiv_id: paper for paper in papers}


def load_translations(
    session: Session, papers: dict[str, Paper], language: str
) -> dict[str, Translation]:
    """The finished translations of exactly the versions in `papers`, by arXiv id."""
    wanted = {(p.arxiv_id, p.version) for p in papers.values()}
    ids = sorted(papers)
    found: dict[str, Translation] = {}
    for start in range(0, len(ids), _IN_BATCH):
        rows = session.scalars(
            select(Translation).where(
                Translation.arxiv_id.in_(ids[start : start + _IN_BATCH]),
                Translation.language == language,
                Translation.status == TranslationStatus.DONE,
            )
        )
        found.update({t.arxiv_id: t for t in rows if (t.arxiv_id, t.version) in wanted})
    return found


def load_tldrs(session: Session, papers: dict[str, Paper]) -> dict[tuple[str, str], str]:
    """The finished TL;DRs of exactly the versions in `papers`, by (arXiv id, language)."""
    ids = sorted(papers)
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(ids), _IN_BATCH):
        rows = session.execute(
            select(Tldr.arxiv_id, Tldr.version, Tldr.language, Tldr.text).where(
                Tldr.arxiv_id.in_(ids[start : start + _IN_BATCH]),
                Tldr.status == TranslationStatus.DONE,
            )
        )
        for arxiv_id, version, language, text in rows:
            if text and papers[arxiv_id].version == version:
                found[(arxiv_id, language)] = text
    return found
