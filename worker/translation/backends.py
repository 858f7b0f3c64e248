"""Translation backends: a few papers' titles and abstracts in, the same in another language out.

Used by worker/translation/job.py (the `translate_listing_date` job and
`newsletter translate`), which decides what a day needs and stores the results;
nothing here touches the database. This module makes the backend
TRANSLATION_BACKEND names; the seam every backend fills, and `translate_papers`
which runs one over many papers, are worker/translation/seam.py's:
- `openai`: any OpenAI-compatible Chat Completions endpoint (hosted, vLLM,
  llama.cpp's server, Ollama): worker/translation/openai_backend.py.
- `recorded`: no network; answers from the recorded translations bundled in
  newsletter/data/demo_*.json (the sample digest's), for the dev demo.
  worker/demo/load.py already stores those as rows, so normally they are reused from
  the cache; the backend covers a demo database whose rows were removed.
"""

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from newsletter.config import Settings
from worker.translation.limits import TokenBudget
from worker.translation.openai_backend import OpenAIBackend
from worker.translation.prompt import Target
from worker.translation.seam import Outcome, SourcePaper, TranslationBackend

RECORDED_DIR = Path(__file__).resolve().parents[2] / "newsletter" / "data"


def make_backend(
    config: Settings, budget: TokenBudget, stop_at: datetime | None
) -> TranslationBackend:
    """The backend TRANSLATION_BACKEND names; `none` has none, so the job does not ask."""
    name = config.TRANSLATION_BACKEND
    if name == "openai":
        return OpenAIBackend(config, budget, stop_at)
    if name == "recorded":
        return RecordedBackend()
    raise ValueError(f"no translation backend {name!r}")


class RecordedBackend:
    """Recorded translations (newsletter/data/demo_*.json) served without a network."""

    model = "recorded"
    max_batch = 50  # no request to bound

    def __init__(self, directory: Path = RECORDED_DIR):
        self.recorded: dict[tuple[str, int], dict] = {}
        for path in sorted(directory.glob("demo_*.json")):
            for paper in json.loads(path.read_text(encoding="utf-8"))["papers"]:
                self.recorded[(paper["arxiv_id"], paper["version"])] = paper

    def translate_batch(self, papers: Sequence[SourcePaper], target: Target) -> list[Outcome]:
        outcomes = []
        for paper in papers:
            answer = self.recorded.get((paper.arxiv_id, paper.version), {}).get(target.language)
            if answer is None:
                outcomes.append(Outcome(paper, error="no recorded translation"))
            else:
                outcomes.append(Outcome(paper, title=answer["title"], abstract=answer["abstract"]))
        return outcomes
