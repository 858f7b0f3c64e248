"""What the two HTTP clients (arXiv in worker/arxiv/client.py, the translation
endpoint in worker/translation/openai_backend.py) share: the parts of their tenacity
retry policy. An attempt that may succeed if tried again raises `Transient`
(what went wrong, and the server's Retry-After); `wait_backoff` waits before the
next attempt; `stop_on_long_retry_after` gives up at once when the server asks
for a longer wait than is worth holding a worker for.
"""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base


class Transient(Exception):
    """One failed attempt worth another: 429, 5xx, a timeout, a lost connection."""

    def __init__(self, problem: str, retry_after: float | None = None):
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


def last_transient(state: RetryCallState) -> Transient:
    """The Transient the attempt just raised (the policies retry nothing else)."""
    assert state.outcome is not None
    error = state.outcome.exception()
    assert isinstance(error, Transient), error
    return error


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds, from either form (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class wait_backoff(wait_base):
    """Exponential backoff with jitter, at least the server's Retry-After.

    After the n-th failed attempt: base * 2**(n-1), times 0.5-1.5, at most `cap`.
    """

    def __init__(self, base: float, cap: float):
        self.base = base
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exponent = retry_state.attempt_number - 1
        delay = min(self.cap, self.base * 2.0**exponent * random.uniform(0.5, 1.5))
        return max(delay, last_transient(retry_state).retry_after or 0.0)


class stop_on_long_retry_after(stop_base):
    """Stop when the server's Retry-After is longer than `longest` seconds."""

    def __init__(self, longest: float):
        self.longest = longest

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = last_transient(retry_state).retry_after
        return retry_after is not None and retry_after > self.longest
