"""The `openai` translation backend: any OpenAI-compatible Chat Completions endpoint.

Made by worker/translation/backends.py's `make_backend`. Several papers per
request as a JSON array; TeX, URLs and identifiers are swapped for
placeholders (worker/translation/placeholders.py) and every answer is validated
(worker/translation/prompt.py, which also writes the prompt); a rejected answer
is asked again, then the paper stays English-only for the day (its Outcome
carries the reason). Requests are spaced, retried (a tenacity policy: backoff
with jitter, Retry-After honoured, no wait that ends past the job's deadline)
and stopped by the daily token budget and the job's deadline.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from newsletter.config import Settings
from newsletter.db import utcnow
from worker.http import (
    Transient,
    last_transient,
    retry_after_seconds,
    stop_on_long_retry_after,
    wait_backoff,
)
from worker.translation.limits import RateLimiter, TokenBudget
from worker.translation.placeholders import protect
from worker.translation.prompt import (
    Target,
    TranslationError,
    build_messages,
    check_entry,
    parse_answer,
    parse_completion,
)
from worker.translation.seam import Outcome, SourcePaper

MAX_ATTEMPTS = 3  # asks per paper before it stays English-only for the day
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is treated as "down"


class EndpointError(RuntimeError):
    """The endpoint cannot serve us now (down, refusing, misconfigured)."""


class RequestRejected(RuntimeError):
    """The endpoint refused this one request (too large, invalid); others may pass."""


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
        config: Settings,
        budget: TokenBudget | None = None,
        stop_at: datetime | None = None,
    ):
        self.url = config.OPENAI_BASE_URL.rstrip("/") + "/chat/completions"
        self.api_key = config.OPENAI_API_KEY
        self.model = config.TRANSLATION_MODEL
        self.timeout = config.TRANSLATION_TIMEOUT
        self.max_batch = max(1, config.TRANSLATION_BATCH_SIZE)
        self.retries = config.TRANSLATION_RETRIES
        self.backoff = config.TRANSLATION_RETRY_BACKOFF
        self.limiter = RateLimiter(config.TRANSLATION_REQUESTS_PER_MINUTE)
        self.budget = budget or TokenBudget(0)
        self.stop_at = stop_at
        # Once the endpoint has failed a whole retry cycle the rest of the day
        # is not worth waiting for: later batches fail at once with this reason.
        self.unavailable: str | None = None

    def translate_batch(self, papers: Sequence[SourcePaper], target: Target) -> list[Outcome]:
        """Ask for `papers`, re-ask for those whose answer was rejected, up to MAX_ATTEMPTS."""
        protected = {p.key: (protect(p.title), protect(p.abstract)) for p in papers}

        def accept(paper: SourcePaper, answers: dict[str, dict]) -> Outcome:
            entry = answers.get(paper.key)
            title, abstract = check_entry(entry, *protected[paper.key], target)
            return Outcome(paper, title=title, abstract=abstract)

        return self.ask_in_turns(
            papers,
            lambda pending: build_messages([(p.key, *protected[p.key]) for p in pending], target),
            parse_answer,
            accept,
        )

    def ask_in_turns(
        self,
        papers: Sequence[SourcePaper],
        ask: Callable[[list[SourcePaper]], list[dict]],
        parse: Callable[[str], dict[str, dict]],
        accept: Callable[[SourcePaper, dict[str, dict]], Outcome],
    ) -> list[Outcome]:
        """Ask for `papers` (messages from `ask`), re-ask for those `accept` rejects, up to MAX_ATTEMPTS.

        `parse` reads an answer's entries by id (ValueError: malformed, every
        paper asked again); `accept` makes one paper's Outcome from them or
        raises TranslationError. Translations and TL;DRs
        (worker/translation/tldr.py) share it, with its budget and deadline.
        """
        done: dict[str, Outcome] = {}
        errors: dict[str, str] = {}
        tokens = dict.fromkeys((p.key for p in papers), 0)
        pending = list(papers)

        def fail_pending(reason: str) -> None:
            errors.update(dict.fromkeys((p.key for p in pending), reason))

        with requests.Session() as http:
            for _attempt in range(MAX_ATTEMPTS):
                reason = self._reason_not_to_send()
                if reason:
                    fail_pending(reason)
                    break
                try:
                    content, used = self._complete(http, ask(pending))
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
                    answers = parse(content)
                except ValueError as exc:
                    fail_pending(f"malformed answer: {exc}")
                    continue
                for paper in pending:
                    try:
                        done[paper.key] = accept(paper, answers)
                    except TranslationError as exc:
                        errors[paper.key] = str(exc)
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
