"""What a listing date's digests need from the model, and the limits its jobs share.

Used by worker/translation/job.py (translations) and worker/translation/tldr.py
(TL;DRs): which papers some digests of a group of subscribers will contain
(decided by the digest core, late papers included), the tokens spent today
(one TRANSLATION_DAILY_TOKEN_BUDGET for both) and the moment the day's held
digests stop waiting (TRANSLATION_DEADLINE_MINUTES).
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import ListingDay, Paper, Subscriber, Tldr, Translation
from worker.digest.core import DayDigest, Reader


def papers_for(day: DayDigest, subscribers: Iterable[Subscriber]) -> list[Paper]:
    """The papers of `day` that some of `subscribers`' digests will contain, late ones included."""
    # Subscribers with the same lines and replacement choice get the same papers.
    readers = {(tuple(s.keyword_lines), s.include_replacements): Reader.of(s) for s in subscribers}
    if not any(reader.keywords for reader in readers.values()):
        return []
    # The digest core decides the sections, as for the digests themselves (only
    # sections are asked for: nothing is rendered, so no digest settings).
    needed = {
        arxiv_id
        for sections in day.sections(readers).values()
        for _keyword, ids in sections
        for arxiv_id in ids
    }
    # Late papers of earlier dates that these digests may carry (worker/digest/core.py):
    # every one a bilingual reader's lines match, whether or not that reader is
    # owed it, so none goes out untranslated for want of planning.
    for late in day.late_matches(readers).values():
        needed |= late
    return [day.papers[arxiv_id] for arxiv_id in sorted(needed)]


def tokens_used_today(session: Session, now: datetime) -> int:
    """Tokens spent on translations and TL;DRs made since midnight UTC (one budget for both)."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    total = 0
    for model in (Translation, Tldr):
        spent = session.scalar(select(func.sum(model.tokens)).where(model.created_at >= midnight))
        total += int(spent or 0)
    return total


def stop_at(day: ListingDay | None, config: Settings, now: datetime) -> datetime:
    """When the day's digests stop waiting: completed_at (else now) + TRANSLATION_DEADLINE_MINUTES."""
    start = day.completed_at if day is not None and day.completed_at is not None else now
    return start + timedelta(minutes=config.TRANSLATION_DEADLINE_MINUTES)
