"""When a listing date is complete: the rule over the FeedFetch rows, and ListingDay.

Used by the poll and saved files (worker/arxiv/ingest.py) and the OAI-PMH
backfill (worker/arxiv/backfill.py), after worker/arxiv/store.py has stored a
group's papers and its FeedFetch row. Owns ListingDay.completed_at and the
deadline note on uncovered groups; the callers commit. The configured groups
(ARXIV_ARCHIVE_GROUPS) come from the caller's settings.

- A fetch *covers* its archives when it is fresh (dated its listing date) and
  carries no warning (a shortfall is stored as the fetch's warning, see
  worker/arxiv/store.py).
- A listing date is complete (ListingDay.completed_at) when every archive of
  every configured group is covered. A saved announcement file (RSS or Atom)
  covering all configured archives counts (its archives come from its link);
  search-API Atom and OAI-PMH files never do, since they are not a whole day by
  construction. An OAI-PMH backfill harvests every archive, so its fresh
  OAI_GROUP row completes the day alone. The poll may also complete a day at
  its deadline with groups uncovered (worker/arxiv/ingest.py); those keep their
  warning, with DEADLINE_NOTE added, for `newsletter status`.
"""

import logging
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select

from newsletter import db
from newsletter.db import utcnow
from newsletter.models import FeedFetch, ListingDay
from worker.arxiv.fetches import find_feed_fetch
from worker.arxiv.store import OAI_GROUP

log = logging.getLogger(__name__)

# Appended to an uncovered group's warning once its day is complete without it.
DEADLINE_NOTE = "the day was completed without a full feed at the deadline"


def configured_archives(groups: Sequence[str]) -> set[str]:
    """Every archive the configured `groups` cover ("cs", "math-ph", ...)."""
    return {a for group in groups for a in group.split("+")}


def covered_archives(listing_date: date) -> set[str]:
    """Archives covered on `listing_date`: by fresh fetches without a warning ("oai" covers all)."""
    session = db.session()
    session.flush()
    groups = session.scalars(
        select(FeedFetch.archive_group).where(
            FeedFetch.listing_date == listing_date,
            FeedFetch.feed_date == listing_date,
            FeedFetch.warning.is_(None),
        )
    ).all()
    return {a for group in groups for a in group.split("+")}


def has_dated_feed(listing_date: date) -> bool:
    """Whether any feed dated `listing_date` was fetched for it (full, short or empty)."""
    return (
        db.session().scalar(
            select(FeedFetch.id)
            .where(FeedFetch.listing_date == listing_date, FeedFetch.feed_date == listing_date)
            .limit(1)
        )
        is not None
    )


def uncovered_groups(listing_date: date, groups: Sequence[str]) -> list[str]:
    """The configured `groups` with an archive not yet covered on `listing_date`, in their order."""
    covered = covered_archives(listing_date)
    if OAI_GROUP in covered:
        return []
    return [group for group in groups if not set(group.split("+")) <= covered]


def update_listing_day(
    listing_date: date, groups: Sequence[str], *, at_deadline: bool = False
) -> bool:
    """Create the day's row; set completed_at once every configured archive is covered.

    With `at_deadline`, complete it whatever is missing (the caller notes what is).
    """
    session = db.session()
    session.flush()
    day = session.get(ListingDay, listing_date)
    if day is None:
        day = ListingDay(listing_date=listing_date)
        session.add(day)
    if day.completed_at is not None:
        return True
    if at_deadline or not uncovered_groups(listing_date, groups):
        day.completed_at = utcnow()
        log.info("listing date %s complete", listing_date)
        return True
    return False


def note_uncovered_groups(listing_date: date, groups: Sequence[str]) -> list[FeedFetch]:
    """Add DEADLINE_NOTE to each uncovered group's warning (once); return the fetches noted now."""
    noted = []
    for group in uncovered_groups(listing_date, groups):
        fetch = find_feed_fetch(listing_date, group)
        if fetch is None:  # never fetched: a poll died between its fetches and this
            fetch = FeedFetch(
                listing_date=listing_date,
                archive_group=group,
                source="rss",
                count_new=0,
                count_cross=0,
                count_replace=0,
                count_replace_cross=0,
                warning=f"{group}: never fetched",
            )
            db.session().add(fetch)
        warning = fetch.warning or f"{group}: not covered"
        if DEADLINE_NOTE in warning:
            continue
        fetch.warning = f"{warning}; {DEADLINE_NOTE}"
        noted.append(fetch)
    db.session().flush()
    return noted
