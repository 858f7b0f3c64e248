"""Titles and abstracts in the bilingual subscribers' second language, made once.

Run by the `translate_listing_date` job (worker/jobs.py) after ingest and by
`newsletter translate`. It owns the Translation rows: each (arXiv id, version,
language) is translated at most once, never per subscriber, and only if some
confirmed bilingual subscriber's digest will contain the paper. When the job
finishes or gives up it sets ListingDay.translated_at, which releases the
bilingual digests held by the dispatcher (which also stops waiting at
completed_at + TRANSLATION_DEADLINE_MINUTES, whatever happens here).

The backend doing the translating is TRANSLATION_BACKEND (worker/translation/backends.py:
`openai` or `recorded`); with `none` the job just marks the day translated.
Language is a parameter: TRANSLATION_LANGUAGE (e.g. "ja"), its name
(TRANSLATION_LANGUAGE_NAME, known for common codes) and a glossary file
worker/translation/data/glossary_<code>.tsv, overlaid by TRANSLATION_GLOSSARY_PATH.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.languages import bilingual_code, target_language
from newsletter.models import (
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
    TranslationStatus,
)
from worker.digest.core import DayDigest
from worker.translation.backends import make_backend
from worker.translation.limits import TokenBudget
from worker.translation.plan import papers_for, stop_at, tokens_used_today
from worker.translation.prompt import Target
from worker.translation.seam import SourcePaper, translate_papers
from worker.translation.tldr import TldrReport, summarize_day

log = logging.getLogger(__name__)

GLOSSARY_DIR = Path(__file__).resolve().parent / "data"
COMMIT_INTERVAL = 1.0  # seconds between commits of finished translations

# --- into what ---


def load_glossary(language: str, extra_path: str | None = None) -> dict[str, str]:
    """The shipped glossary for `language`, overlaid with the operator's file."""
    paths = [GLOSSARY_DIR / f"glossary_{language}.tsv"]
    if extra_path:
        paths.append(Path(extra_path))
        if not paths[-1].exists():
            log.warning("TRANSLATION_GLOSSARY_PATH %s not found; ignored", extra_path)
    glossary: dict[str, str] = {}
    for path in paths:
        if not path.exists():
            continue  # a language without a shipped glossary gets no hints
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            term, sep, rendering = line.partition("\t")
            if not sep or not term.strip() or not rendering.strip():
                log.warning("%s:%d: not 'term<TAB>translation'; ignored", path, number)
                continue
            glossary[term.strip()] = rendering.strip()
    return glossary


def target_from_config(config: Settings) -> Target:
    """The Target named by TRANSLATION_LANGUAGE, its name and glossaries."""
    language = config.TRANSLATION_LANGUAGE
    name = target_language(language, config.TRANSLATION_LANGUAGE_NAME).english_name
    return Target(language, name, load_glossary(language, config.TRANSLATION_GLOSSARY_PATH))


# --- the day's job (database) ---


@dataclass
class DayReport:
    """What one run did for one listing date."""

    listing_date: date
    translated: int = 0
    reused: int = 0
    failed: int = 0
    tokens: int = 0
    tldrs: TldrReport | None = None  # when TL;DRs were asked for

    def __str__(self) -> str:
        tldrs = f"; {self.tldrs}" if self.tldrs else ""
        return (
            f"{self.listing_date}: translated {self.translated}, reused from cache {self.reused}, "
            f"failed {self.failed}, tokens used {self.tokens}{tldrs}"
        )


def papers_to_translate(session: Session, listing_date: date, config: Settings) -> list[Paper]:
    """The day's papers that some confirmed `en+<language>` subscriber's digest will contain."""
    subscribers = session.scalars(
        select(Subscriber)
        .where(
            Subscriber.status == SubscriberStatus.CONFIRMED,
            Subscriber.language == bilingual_code(config.TRANSLATION_LANGUAGE),
        )
        .options(selectinload(Subscriber.keywords))
    )
    return papers_for(DayDigest.load(session, config, listing_date), subscribers)


def translate_day(
    session: Session,
    config: Settings,
    listing_date: date,
    *,
    respect_deadline: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> DayReport:
    """Translate what `listing_date`'s bilingual digests need, once; set translated_at.

    Idempotent: done translations are reused, failed ones are tried again.
    The job stops sending at completed_at + TRANSLATION_DEADLINE_MINUTES
    (the digests have gone by then); the CLI passes respect_deadline=False.
    `progress` gets (papers done, papers to translate) as each batch returns.
    """
    report = DayReport(listing_date)
    day = session.get(ListingDay, listing_date)
    language = config.TRANSLATION_LANGUAGE
    if config.TRANSLATION_BACKEND != "none":
        papers = papers_to_translate(session, listing_date, config)
        existing = {
            (t.arxiv_id, t.version): t
            for t in session.scalars(
                select(Translation).where(
                    Translation.arxiv_id.in_([p.arxiv_id for p in papers]),
                    Translation.language == language,
                )
            )
        }
        wanted = []
        for paper in papers:
            row = existing.get((paper.arxiv_id, paper.version))
            if row is not None and row.status is TranslationStatus.DONE:
                report.reused += 1
            else:
                wanted.append(
                    SourcePaper(paper.arxiv_id, paper.version, paper.title, paper.abstract)
                )
        if wanted:
            _translate_and_store(
                session, config, day, wanted, existing, report, respect_deadline, progress
            )
        # TL;DRs go with the day's translations: digests that show them wait for both.
        report.tldrs = summarize_day(
            session,
            config,
            listing_date,
            target_from_config(config),
            respect_deadline=respect_deadline,
        )
    if day is not None and day.completed_at is not None and day.translated_at is None:
        day.translated_at = utcnow()
    session.commit()
    log.info("translation %s", report)
    return report


def _translate_and_store(
    session: Session,
    config: Settings,
    day: ListingDay | None,
    wanted: list[SourcePaper],
    existing: dict[tuple[str, int], Translation],
    report: DayReport,
    respect_deadline: bool,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    now = utcnow()
    deadline = None
    if respect_deadline:
        deadline = stop_at(day, config, now)
        if now >= deadline:
            # The digests have gone out; `newsletter translate` can still do it by hand.
            log.warning(
                "translation of %s: deadline passed, %d papers left English-only",
                report.listing_date,
                len(wanted),
            )
            report.failed += len(wanted)
            return
    budget = TokenBudget(config.TRANSLATION_DAILY_TOKEN_BUDGET, tokens_used_today(session, now))
    backend = make_backend(config, budget, deadline)
    target = target_from_config(config)
    # The database is written from this thread only. Committing at most every
    # COMMIT_INTERVAL keeps a fast endpoint from waiting on fsyncs; a crash
    # loses only that much work (and the batches in flight).
    last_commit = time.monotonic()
    done = 0
    if progress is not None:
        progress(done, len(wanted))
    for outcomes in translate_papers(backend, wanted, target, config.TRANSLATION_CONCURRENCY):
        for outcome in outcomes:
            paper = outcome.paper
            row = existing.get((paper.arxiv_id, paper.version))
            if row is None:
                row = Translation(
                    arxiv_id=paper.arxiv_id,
                    version=paper.version,
                    language=target.language,
                    tokens=0,
                )
                session.add(row)
            row.status = TranslationStatus.FAILED if outcome.error else TranslationStatus.DONE
            row.title, row.abstract, row.error = outcome.title, outcome.abstract, outcome.error
            row.model = backend.model
            row.tokens = (row.tokens or 0) + outcome.tokens
            report.tokens += outcome.tokens
            if outcome.error:
                report.failed += 1
                log.info("translation of %s failed: %s", paper.key, outcome.error)
            else:
                report.translated += 1
        if time.monotonic() - last_commit >= COMMIT_INTERVAL:
            session.commit()
            last_commit = time.monotonic()
        done += len(outcomes)
        if progress is not None:
            progress(done, len(wanted))
    session.commit()
