"""Which late papers a subscriber's next digest carries.

Used by dispatch (worker/delivery/dispatch.py) for every page of due
subscribers, and by `newsletter digest preview`.

Late papers (issue 10; the digest side is in worker/digest/core.py). A paper L
listed on D that reached us after D completed goes, once, into subscriber S's
next digest made after it came, in the section of each of S's keywords it
matches, marked with its own listing date; the row's `sections` hold its id,
so a resend renders the same. Decided per page with one more query (the
page's earlier rows, only for subscribers some late paper matches):
- S gets L only if S has a row for D and none of S's rows from D on holds
  L. The rows' sections, not their times, decide: a row for D made after L
  came holds L (never twice), unless the process that made it had read D
  before L came (worker/delivery/sending.py keeps a day per process), and then L is
  owed and comes next (never dropped). The next date's dispatch, a second
  dispatch and a resend never repeat it: the row that carried L holds it.
- A subscriber with no row for D (joined after D, or paused then) gets none
  of D's papers, on time or late: a late paper completes a digest they had.
- A digest that would be empty but for late papers is made and sent.
- Only late papers of the last LATE_LOOKBACK_DATES listing dates are carried
  (worker/digest/core.py); older ones stay on their own day's web page and preview.
"""

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Paper
from worker.delivery.weekly import covered_dates
from worker.digest.core import DayDigest, Reader
from worker.digest.loading import late_window_start

# Ids per IN (...) query, well under every backend's parameter limit.
_IN_BATCH = 500


def late_papers_due(
    session: Session, day: DayDigest, readers: dict[int, Reader]
) -> dict[int, set[str]]:
    """Per subscriber, the late papers their digest of `day` carries (one query per page)."""
    matches = day.late_matches(readers)
    if not matches:
        return {}
    since = late_window_start(day.first_listing_date)
    history: dict[int, list[tuple[date, list]]] = {}
    ids = sorted(matches)
    for start in range(0, len(ids), _IN_BATCH):
        rows = session.execute(
            select(
                Delivery.subscriber_id,
                Delivery.listing_date,
                Delivery.first_listing_date,
                Delivery.sections,
            ).where(
                Delivery.subscriber_id.in_(ids[start : start + _IN_BATCH]),
                Delivery.listing_date >= since,
                Delivery.listing_date < day.listing_date,
            )
        )
        for subscriber_id, listing_date, first, sections in rows:
            entries = history.setdefault(subscriber_id, [])
            entries.append((listing_date, sections))
            # A weekly row covers each of its dates: they count as had (with no papers).
            if first is not None:
                entries += [
                    (d, []) for d in covered_dates(first, listing_date) if d != listing_date
                ]
    due = {}
    for subscriber_id, candidates in matches.items():
        found = late_due(candidates, day.late, history.get(subscriber_id, []))
        if found:
            due[subscriber_id] = found
    return due


def late_due(
    candidates: set[str], late: dict[str, Paper], rows: list[tuple[date, list]]
) -> set[str]:
    """Of the late papers a subscriber's lines match, those they are owed (pure).

    `rows` are the subscriber's (listing date, sections) of the
    look-back window. Owed: the paper's own date has a row, and no row of
    that date or later holds it.
    """
    dates = {listing_date for listing_date, _sections in rows}
    owed = set()
    for arxiv_id in candidates:
        paper = late[arxiv_id]
        if paper.listing_date not in dates:
            continue
        had = any(
            arxiv_id in ids
            for listing_date, sections in rows
            if listing_date >= paper.listing_date
            for _keyword, ids in sections or ()
        )
        if not had:
            owed.add(arxiv_id)
    return owed
