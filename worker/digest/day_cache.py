"""The day's DayDigest, made once per process and reused by every drain, dispatch and page view.

Used by worker/delivery/sending.py (each drain job),
worker/delivery/dispatch.py (matching each page of subscribers) and the
digest's web page (newsletter/digests.py, every view). A DayDigest holds the
day's papers, the fragments rendered once per paper and the match cache, so a
process keeps the last DAYS_KEPT of them and makes a new one only when the day
changed under it: its translations (and TL;DRs, written before translated_at)
came, or a late paper was stored since. A DayDigest is not safe to use from two
threads at once: a threaded caller serializes its use.
"""

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import ListingDay, Paper, Translation
from worker.digest.core import DayDigest
from worker.digest.loading import (
    late_window_start,
    load_day,
    load_span,
    load_tldrs,
    load_translations,
)

# The DayDigest of the last few (database, listing date, translated_at) seen.
DAYS: dict[tuple, DayDigest] = {}
DAYS_KEPT = 2


def day_digest(
    engine: Engine, config: Settings, listing_date: date, first_listing_date: date | None = None
) -> DayDigest:
    """The day's DayDigest, made once per process (again once the day is translated).

    With `first_listing_date`, the digest of the listing dates from it to
    `listing_date` (a weekly one, worker/delivery/weekly.py).
    """
    since = first_listing_date or listing_date
    with Session(engine) as session:
        translated_at = session.scalar(
            select(ListingDay.translated_at).where(ListingDay.listing_date == listing_date)
        )
        # A late paper stored since this process read the day changes what its
        # rows name (worker/digest/core.py): read the day again then.
        newest_paper = session.scalar(
            select(func.max(Paper.updated_at)).where(Paper.listing_date >= late_window_start(since))
        )
        key = (
            str(engine.url),
            listing_date,
            translated_at,
            newest_paper,
            config.TRANSLATION_LANGUAGE,
            first_listing_date,
        )
        day = DAYS.get(key)
        if day is not None:
            return day
        # Closing the session detaches the papers with every column loaded.
        if first_listing_date is None:
            papers = load_day(session, listing_date)
        else:
            papers = load_span(session, first_listing_date, listing_date)

    def translations(papers, language) -> dict[str, Translation]:
        with Session(engine) as session:
            return load_translations(session, papers, language)

    def tldrs(papers) -> dict[tuple[str, str], str]:
        with Session(engine) as session:
            return load_tldrs(session, papers)

    day = DayDigest(
        listing_date, papers, config, translations, first_listing_date, load_tldrs=tldrs
    )
    # The same day before its translations came is done with: its fragments
    # and dispatch's match cache (~30,000 lines) would stay for nothing.
    for stale in [k for k in DAYS if k[:2] == key[:2] and k[3:] == key[3:]]:
        del DAYS[stale]
    while len(DAYS) >= DAYS_KEPT:
        DAYS.pop(next(iter(DAYS)))
    DAYS[key] = day
    return day
