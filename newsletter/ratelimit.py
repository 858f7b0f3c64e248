"""Sign-up attempts an hour under a key (`ip:<address>`, `address:<email>`), with `limits`.

Called by the sign-up and resend views (newsletter/subscriptions.py). With
REDIS_URL the counts live in Redis, shared by every web process; without it
(the embedded mode) they live in this process, which is right for the single
dev process and wrong for several gunicorn workers, so production sets REDIS_URL.
A moving window: an attempt counts for one hour after it is made, and a refused
one is told when the oldest counted attempt leaves the window.
"""

import math
import threading
import time

from flask import current_app
from limits import RateLimitItemPerHour
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from newsletter.config import settings
from worker.queue import redis_connection

# Keys read LIMITS:newsletter:ratelimit/ip:203.0.113.7 in Redis.
NAMESPACE = "newsletter:ratelimit"

# Made on first use (it starts a timer thread), then shared by every app in the process.
_memory: MemoryStorage | None = None
_memory_lock = threading.Lock()


class Attempts(RateLimitItemPerHour):
    """At most `amount` attempts an hour, counted under the key alone.

    `limits` also puts the amount in the key, so a lowered limit (an operator
    changing SIGNUP_LIMIT_PER_IP during a flood) would start counting from zero;
    here it applies to the attempts already made.
    """

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join([self.namespace, *map(str, identifiers)])


def attempt(key: str, limit: int) -> int | None:
    """Count one attempt under `key`: None within `limit` an hour, else the
    seconds until the next attempt would be allowed (a refused one is not counted)."""
    item = Attempts(limit, namespace=NAMESPACE)
    limiter = app_limiter()
    if limiter.hit(item, key):
        return None
    reset_time = limiter.get_window_stats(item, key).reset_time
    return max(1, math.ceil(reset_time - time.time()))


def app_limiter() -> MovingWindowRateLimiter:
    """The app's limiter, on the app's Redis connection or this process's memory."""
    extensions = current_app.extensions
    if "ratelimit" not in extensions:
        url = settings().REDIS_URL
        connection = redis_connection(url)
        storage: Storage = (
            RedisStorage(url, connection_pool=connection.connection_pool)
            if connection is not None and url is not None
            else process_memory()
        )
        extensions["ratelimit"] = MovingWindowRateLimiter(storage)
    return extensions["ratelimit"]


def process_memory() -> MemoryStorage:
    """The in-process counts, made on first use."""
    global _memory
    with _memory_lock:
        if _memory is None:
            _memory = MemoryStorage()
        return _memory


def reset_local() -> None:
    """Forget in-process counts (tests)."""
    if _memory is not None:
        _memory.reset()
