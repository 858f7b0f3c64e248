"""Limits shared by a translation backend's threads: the daily token budget, the request rate.

Used by worker/translation/openai_backend.py and worker/translation/job.py
(which starts the budget from the tokens already spent today).
"""

import logging
import threading
import time

log = logging.getLogger(__name__)


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
