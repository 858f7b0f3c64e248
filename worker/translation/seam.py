"""The translation backend seam: what a backend takes and gives, and running one over many papers.

Used by worker/translation/job.py (`translate_papers`), by the backends
(worker/translation/backends.py, openai_backend.py) and by their tests.
`TranslationBackend.translate_batch(papers, target)` is the one seam;
`translate_papers` runs a backend over many papers a few batches at a time.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

from worker.translation.prompt import Target

log = logging.getLogger(__name__)

# Bounds one request: a model answers a few papers as well as one, and a
# small request fails (and is retried) cheaply.
MAX_BATCH_CHARS = 12_000


@dataclass(frozen=True)
class SourcePaper:
    """One paper version's English title and abstract."""

    arxiv_id: str
    version: int
    title: str
    abstract: str

    @property
    def key(self) -> str:
        return f"{self.arxiv_id}v{self.version}"


@dataclass(frozen=True)
class Outcome:
    """What became of one paper: a translation, or why it has none."""

    paper: SourcePaper
    title: str | None = None
    abstract: str | None = None
    tldr: str | None = None  # a TL;DR's text (worker/translation/tldr.py), not a translation
    error: str | None = None
    tokens: int = 0


class TranslationBackend(Protocol):
    """Turns a few papers into the target language; never raises for one paper's fault."""

    model: str  # stored on each Translation row
    max_batch: int  # papers per translate_batch call

    def translate_batch(self, papers: Sequence[SourcePaper], target: Target) -> list[Outcome]: ...


def translate_papers(
    backend: TranslationBackend, papers: Sequence[SourcePaper], target: Target, concurrency: int
) -> Iterator[list[Outcome]]:
    """Each batch's outcomes as the batch finishes, `concurrency` batches at a time."""
    return run_batches(
        lambda batch: backend.translate_batch(batch, target), papers, backend.max_batch, concurrency
    )


def run_batches(
    work: Callable[[list[SourcePaper]], list[Outcome]],
    papers: Sequence[SourcePaper],
    max_batch: int,
    concurrency: int,
) -> Iterator[list[Outcome]]:
    """`work` over batches of `papers`: each batch's outcomes as it finishes (also TL;DRs')."""
    batches = make_batches(papers, max_batch)
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="translate") as pool:
        futures = {pool.submit(work, batch): batch for batch in batches}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # a bug must not keep the day from finishing
                log.exception("translation batch failed")
                error = f"internal error: {type(exc).__name__}"
                yield [Outcome(paper, error=error) for paper in futures[future]]


def make_batches(
    papers: Sequence[SourcePaper], max_papers: int, max_chars: int = MAX_BATCH_CHARS
) -> list[list[SourcePaper]]:
    """Consecutive groups of at most `max_papers` papers and about `max_chars` characters."""
    batches: list[list[SourcePaper]] = []
    size = 0
    for paper in papers:
        length = len(paper.title) + len(paper.abstract)
        if not batches or len(batches[-1]) >= max_papers or size + length > max_chars:
            batches.append([])
            size = 0
        batches[-1].append(paper)
        size += length
    return batches
