"""One-line TL;DRs of the papers ticking subscribers' digests contain, written once (issue 12 item 6).

Run by worker/translation/job.py's `translate_day` (the `translate_listing_date`
job and `newsletter translate`) after the day's translations and before it
sets ListingDay.translated_at, so a digest that shows TL;DRs is held like a
bilingual one (worker/delivery/due.py) and goes without them past
TRANSLATION_DEADLINE_MINUTES. It owns the Tldr rows: one per (arXiv id,
version, language), written at most once and never per subscriber, only for
papers some confirmed subscriber who ticked "TL;DR" gets: in English for
all of them, and in TRANSLATION_LANGUAGE too for the bilingual ones.

The same machinery as translation: the `openai` backend's requests, re-asks,
retries, token budget (one daily budget for both) and deadline
(worker/translation/openai_backend.py, `ask_in_turns`); its prompt and answer
checks are worker/translation/tldr_prompt.py's. Other backends (`none`,
`recorded`) write none: the digests show no TL;DR, and no error.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.languages import bilingual_code
from newsletter.models import (
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
    Tldr,
    TranslationStatus,
)
from worker.digest.core import DayDigest
from worker.translation.limits import TokenBudget
from worker.translation.openai_backend import OpenAIBackend
from worker.translation.plan import papers_for, stop_at, tokens_used_today
from worker.translation.prompt import Target, parse_answer
from worker.translation.seam import Outcome, SourcePaper, run_batches
from worker.translation.tldr_prompt import ENGLISH, build_tldr_messages, check_tldr, protect_paper

log = logging.getLogger(__name__)


@dataclass
class TldrReport:
    """What one run did for one listing date's TL;DRs (all languages)."""

    written: int = 0
    reused: int = 0
    failed: int = 0
    tokens: int = 0

    def __bool__(self) -> bool:
        return bool(self.written or self.reused or self.failed)

    def __str__(self) -> str:
        return (
            f"TL;DRs written {self.written}, reused from cache {self.reused}, "
            f"failed {self.failed}, tokens used {self.tokens}"
        )


def papers_to_summarize(
    session: Session, listing_date: date, config: Settings
) -> dict[str, list[Paper]]:
    """Per language, the day's papers some confirmed ticking subscriber's digest will contain."""
    subscribers = list(
        session.scalars(
            select(Subscriber)
            .where(Subscriber.status == SubscriberStatus.CONFIRMED, Subscriber.tldr.is_(True))
            .options(selectinload(Subscriber.keywords))
        )
    )
    if not subscribers:
        return {}
    day = DayDigest.load(session, config, listing_date)
    wanted = {ENGLISH.language: papers_for(day, subscribers)}
    bilingual = bilingual_code(config.TRANSLATION_LANGUAGE)
    second = [s for s in subscribers if s.language == bilingual]
    if second:
        wanted[config.TRANSLATION_LANGUAGE] = papers_for(day, second)
    return {language: papers for language, papers in wanted.items() if papers}


def summarize_day(
    session: Session,
    config: Settings,
    listing_date: date,
    second: Target,
    *,
    respect_deadline: bool = True,
) -> TldrReport:
    """Write the TL;DRs `listing_date`'s ticking subscribers' digests need, once each.

    English for all of them; `second` (TRANSLATION_LANGUAGE's Target) for bilingual ones.

    Idempotent: done TL;DRs are reused, failed ones are tried again. Commits.
    """
    report = TldrReport()
    if config.TRANSLATION_BACKEND != "openai":
        return report  # only a model writes TL;DRs: none, and no error
    needed = papers_to_summarize(session, listing_date, config)
    rows = _rows(session, needed)
    wanted: dict[str, list[SourcePaper]] = {}
    for language, papers in needed.items():
        for paper in papers:
            row = rows.get((paper.arxiv_id, paper.version, language))
            if row is not None and row.status is TranslationStatus.DONE:
                report.reused += 1
            else:
                source = SourcePaper(paper.arxiv_id, paper.version, paper.title, paper.abstract)
                wanted.setdefault(language, []).append(source)
    if not wanted:
        return report
    now = utcnow()
    deadline = stop_at(session.get(ListingDay, listing_date), config, now)
    if respect_deadline and now >= deadline:
        report.failed += sum(map(len, wanted.values()))
        log.warning("TL;DRs of %s: deadline passed, %d left out", listing_date, report.failed)
        return report
    budget = TokenBudget(config.TRANSLATION_DAILY_TOKEN_BUDGET, tokens_used_today(session, now))
    backend = OpenAIBackend(config, budget, deadline if respect_deadline else None)
    for language, sources in wanted.items():
        target = ENGLISH if language == ENGLISH.language else second
        batches = run_batches(
            partial(summarize_batch, backend, target=target),
            sources,
            backend.max_batch,
            config.TRANSLATION_CONCURRENCY,
        )
        for outcomes in batches:
            for outcome in outcomes:
                _store(session, rows, outcome, language, backend.model, report)
            session.commit()
    log.info("TL;DRs of %s: %s", listing_date, report)
    return report


def summarize_batch(
    backend: OpenAIBackend, papers: Sequence[SourcePaper], target: Target
) -> list[Outcome]:
    """One request's TL;DRs for `papers` (re-asked for rejected ones), each checked."""
    protected = {p.key: protect_paper(p.title, p.abstract) for p in papers}

    def accept(paper: SourcePaper, answers: dict[str, dict]) -> Outcome:
        source = protected[paper.key][1]  # either half: both carry every original
        return Outcome(paper, tldr=check_tldr(answers.get(paper.key), source, target))

    return backend.ask_in_turns(
        papers,
        lambda pending: build_tldr_messages([(p.key, *protected[p.key]) for p in pending], target),
        lambda content: parse_answer(content, "tldrs"),
        accept,
    )


def _rows(session: Session, needed: dict[str, list[Paper]]) -> dict[tuple[str, int, str], Tldr]:
    """The stored TL;DRs (done or failed) of the needed papers, by (id, version, language)."""
    ids = sorted({paper.arxiv_id for papers in needed.values() for paper in papers})
    found: dict[tuple[str, int, str], Tldr] = {}
    for start in range(0, len(ids), 500):  # under every backend's parameter limit
        for row in session.scalars(select(Tldr).where(Tldr.arxiv_id.in_(ids[start : start + 500]))):
            found[(row.arxiv_id, row.version, row.language)] = row
    return found


def _store(
    session: Session,
    rows: dict[tuple[str, int, str], Tldr],
    outcome: Outcome,
    language: str,
    model: str,
    report: TldrReport,
) -> None:
    paper = outcome.paper
    row = rows.get((paper.arxiv_id, paper.version, language))
    if row is None:
        row = Tldr(arxiv_id=paper.arxiv_id, version=paper.version, language=language, tokens=0)
        rows[(paper.arxiv_id, paper.version, language)] = row
        session.add(row)
    row.status = TranslationStatus.FAILED if outcome.error else TranslationStatus.DONE
    row.text, row.error, row.model = outcome.tldr, outcome.error, model
    row.tokens = (row.tokens or 0) + outcome.tokens
    report.tokens += outcome.tokens
    if outcome.error:
        report.failed += 1
        log.info("TL;DR of %s (%s) failed: %s", paper.key, language, outcome.error)
    else:
        report.written += 1
