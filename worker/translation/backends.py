"""Translation backends: a few papers' titles and abstracts in, the same in another language out.

Used by worker/translation/job.py (the `translate_listing_date` job and
`newsletter translate`), which decides what a day needs and stores the results;
nothing here touches the database. This module owns the one seam,
`TranslationBackend.translate_batch(papers, target)`, and `translate_papers`,
which runs a backend over many papers a few batches at a time:
- `openai`: any OpenAI-compatible Chat Completions endpoint (hosted, vLLM,
  llama.cpp's server, Ollama). Several papers per request as a JSON array;
  TeX, URLs and identifiers are swapped for placeholders (worker/translation/placeholders.py)
  and every answer is validated (worker/translation/prompt.py, which also
  writes the prompt); a rejected answer is asked again, then the paper stays
  English-only for the day (its Outcome carries the reason).
  Requests are spaced, retried (a tenacity policy: backoff with jitter,
  Retry-After honoured, no wait that ends past the job's deadline) and stopped
  by the daily token budget and the job's deadline.
- `recorded`: no network; answers from the recorded translations bundled in
  newsletter/data/demo_*.json (the sample digest's), for the dev demo.
  worker/demo/load.py already stores those as rows, so normally they are reused from
  the cache; the backend covers a demo database whose rows were removed.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn, Protocol

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from newsletter.db import utcnow
from worker.http import (
    Transient,
    last_transient,
    retry_after_seconds,
    stop_on_long_retry_after,
    wait_backoff,
)
from worker.translation.placeholders import protect
from worker.translation.prompt import (
    Target,
    TranslationError,
    build_messages,
    check_entry,
    parse_answer,
    parse_completion,
)

log = logging.getLogger(__name__)

RECORDED_DIR = Path(__file__).resolve().parents[2] / "newsletter" / "data"

# Bounds one request: a model answers a few papers as well as one, and a
# small request fails (and is retried) cheaply.
MAX_BATCH_CHARS = 12_000
MAX_ATTEMPTS = 3  # asks per paper before it stays English-only for the day
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is treated as "down"


class EndpointError(RuntimeError):
    """The endpoint cannot serve us now (down, refusing, misconfigured)."""


class RequestRejected(RuntimeError):
    """The endpoint refused this one request (too large, invalid); others may pass."""


# --- the seam ---


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
    batches = make_batches(papers, backend.max_batch)
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="translate") as pool:
        futures = {pool.submit(backend.translate_batch, batch, target): batch for batch in batches}
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


# --- limits shared by a backend's threads ---


class TokenBudget:
    """Tokens left today across every thread; logs one line when it runs out."""

    def __init__(self, limit: int, used: int = 0):
        self.limit = limit
        self.used = used
        self._lock = threading.Lock()
        self._announced = False
        if self.exhausted:
            self._announce()

    @property
    def exhausted(self) -> bool:
        return self.limit > 0 and self.used >= self.limit

    def spend(self, tokens: int) -> None:
        with self._lock:
            self.used += tokens
            if self.exhausted:
                self._announce()

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            log.warning(
                "translation: daily token budget reached (%d of %d tokens used today, "
                "TRANSLATION_DAILY_TOKEN_BUDGET); the remaining papers stay English-only",
                self.used,
                self.limit,
            )


class RateLimiter:
    """At most `per_minute` requests a minute, evenly spaced, across threads."""

    def __init__(self, per_minute: int):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            time.sleep(at - now)


# --- backends ---


def make_backend(config: dict, budget: TokenBudget, stop_at: datetime | None) -> TranslationBackend:
    """The backend TRANSLATION_BACKEND names; `none` has none, so the job does not ask."""
    name = config["TRANSLATION_BACKEND"]
    if name == "openai":
        return OpenAIBackend(config, budget, stop_at)
    if name == "recorded":
        return RecordedBackend()
    raise ValueError(f"no translation backend {name!r}")


class stop_wait_past(stop_base):
    """Stop retrying when the next wait would end at or after `deadline` (None: never)."""

    def __init__(self, deadline: datetime | None):
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        after_wait = utcnow() + timedelta(seconds=retry_state.upcoming_sleep)
        return self.deadline is not None and after_wait >= self.deadline


class OpenAIBackend:
    """An OpenAI-compatible Chat Completions endpoint over HTTP."""

    def __init__(
        self,
        config: dict,
        budget: TokenBudget | None = None,
        stop_at: datetime | None = None,
    ):
        self.url = config["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
        self.api_key = config.get("OPENAI_API_KEY")
        self.model = config["TRANSLATION_MODEL"]
        self.timeout = config["TRANSLATION_TIMEOUT"]
        self.max_batch = max(1, config["TRANSLATION_BATCH_SIZE"])
        self.retries = config["TRANSLATION_RETRIES"]
        self.backoff = config["TRANSLATION_RETRY_BACKOFF"]
        self.limiter = RateLimiter(config["TRANSLATION_REQUESTS_PER_MINUTE"])
        self.budget = budget or TokenBudget(0)
        self.stop_at = stop_at
        # Once the endpoint has failed a whole retry cycle the rest of the day
        # is not worth waiting for: later batches fail at once with this reason.
        self.unavailable: str | None = None

    def translate_batch(self, papers: Sequence[SourcePaper], target: Target) -> list[Outcome]:
        """Ask for `papers`, re-ask for those whose answer was rejected, up to MAX_ATTEMPTS."""
        protected = {p.key: (protect(p.title), protect(p.abstract)) for p in papers}
        done: dict[str, Outcome] = {}
        errors: dict[str, str] = {}
        tokens = dict.fromkeys(protected, 0)
        pending = list(papers)

        def fail_pending(reason: str) -> None:
            errors.update(dict.fromkeys((p.key for p in pending), reason))

        with requests.Session() as http:
            for _attempt in range(MAX_ATTEMPTS):
                reason = self._reason_not_to_send()
                if reason:
                    fail_pending(reason)
                    break
                items = [(p.key, *protected[p.key]) for p in pending]
                try:
                    content, used = self._complete(http, build_messages(items, target))
                except (EndpointError, RequestRejected) as exc:
                    if isinstance(exc, EndpointError):
                        self.unavailable = self.unavailable or str(exc)
                    fail_pending(str(exc))
                    break
                self.budget.spend(used)
                share, remainder = divmod(used, len(pending))
                for index, paper in enumerate(pending):
                    tokens[paper.key] += share + (1 if index < remainder else 0)
                try:
                    answers = parse_answer(content)
                except ValueError as exc:
                    fail_pending(f"malformed answer: {exc}")
                    continue
                for paper in pending:
                    entry = answers.get(paper.key)
                    try:
                        title, abstract = check_entry(entry, *protected[paper.key], target)
                    except TranslationError as exc:
                        errors[paper.key] = str(exc)
                    else:
                        done[paper.key] = Outcome(paper, title=title, abstract=abstract)
                pending = [p for p in pending if p.key not in done]
                if not pending:
                    break
        return [
            replace(done.get(p.key) or Outcome(p, error=errors[p.key]), tokens=tokens[p.key])
            for p in papers
        ]

    def _reason_not_to_send(self) -> str | None:
        if self.unavailable:
            return self.unavailable
        if self.budget.exhausted:
            return "daily token budget reached"
        if self._past_deadline():
            return "translation deadline passed"
        return None

    def _past_deadline(self) -> bool:
        return self.stop_at is not None and utcnow() >= self.stop_at

    def _complete(self, http: requests.Session, messages: list[dict]) -> tuple[str, int]:
        """One chat completion's text and tokens, retrying 429, 5xx and timeouts with backoff."""
        payload = {"model": self.model, "messages": messages, "temperature": 0}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        attempts = self.retries + 1

        def give_up(state: RetryCallState) -> NoReturn:
            error = last_transient(state)
            if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
                raise EndpointError(f"{error.problem}, Retry-After {error.retry_after:.0f} s")
            if state.attempt_number >= attempts:
                raise EndpointError(
                    f"endpoint unavailable after {attempts} attempts: {error.problem}"
                )
            raise EndpointError(f"translation deadline passed (last error: {error.problem})")

        retrying = Retrying(
            before=lambda state: self.limiter.wait(),
            retry=retry_if_exception_type(Transient),
            wait=wait_backoff(self.backoff, MAX_RETRY_AFTER),
            stop=(
                stop_after_attempt(attempts)
                | stop_on_long_retry_after(MAX_RETRY_AFTER)
                | stop_wait_past(self.stop_at)
            ),
            retry_error_callback=give_up,
        )
        return retrying(self._post, http, payload, headers, messages)

    def _post(
        self, http: requests.Session, payload: dict, headers: dict, messages: list[dict]
    ) -> tuple[str, int]:
        """One attempt: the completion's text and tokens; Transient for what a retry may cure."""
        try:
            response = http.post(self.url, json=payload, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise Transient(f"no answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise Transient(f"cannot reach {self.url}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise Transient(
                f"HTTP {response.status_code} from {self.url}",
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        if response.status_code >= 400:
            problem = f"HTTP {response.status_code} from {self.url}: {response.text[:200]}"
            if response.status_code in (400, 413, 422):
                raise RequestRejected(problem)  # e.g. this batch is over the context size
            raise EndpointError(problem)  # a wrong key, model or URL: retrying will not help
        try:
            data = response.json()
        except ValueError:
            data = None  # no text: a malformed answer for every paper asked
        return parse_completion(data, messages)


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
