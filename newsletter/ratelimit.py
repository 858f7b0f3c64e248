"""Fixed-window counters for sign-up attempts, shared through Redis when configured.

Without Redis (the embedded mode) the counters live in this process, which is
right for the single dev process and wrong for several gunicorn workers, so
production sets REDIS_URL.
"""

import threading
import time

from worker.queue import redis_connection

_local_counts: dict[str, tuple[int, int]] = {}
_local_lock = threading.Lock()


def allow(key: str, limit: int, window_seconds: int = 3600) -> bool:
    """Count one attempt under `key`; False once `limit` attempts fall in the window."""
    window = int(time.time() // window_seconds)
    bucket = f"newsletter:ratelimit:{key}:{window}"
    connection = redis_connection()
    if connection is not None:
        with connection.pipeline() as pipe:
            pipe.incr(bucket)
            pipe.expire(bucket, window_seconds)
            count = pipe.execute()[0]
        return count <= limit
    with _local_lock:
        seen_window, count = _local_counts.get(key, (window, 0))
        count = count + 1 if seen_window == window else 1
        _local_counts[key] = (window, count)
        return count <= limit


def reset_local() -> None:
    """Forget in-process counts (tests)."""
    with _local_lock:
        _local_counts.clear()
