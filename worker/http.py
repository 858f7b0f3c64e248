"""What the two HTTP clients (arXiv in worker/arxiv/client.py, the translation
endpoint in worker/translation/backends.py) share: reading Retry-After, and the
backoff between retries."""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


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


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base * 2**attempt, times 0.5-1.5, at most `cap`."""
    return min(cap, base * 2**attempt * random.uniform(0.5, 1.5))
