"""The arXiv HTTP client: fetching documents as bytes, politely.

Run by ingest (the scheduled poll in worker/arxiv/ingest.py, the OAI-PMH backfill
in worker/arxiv/backfill.py) inside an app context. It owns how we talk to arXiv:
one rate limiter for the whole deployment, a User-Agent that names us,
timeouts, a cap on document size, retries with exponential backoff and
jitter, Retry-After honoured. What the bytes mean is worker/arxiv/feeds.py's job.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import date

import requests
from flask import current_app

from worker.arxiv.feeds import MAX_DOCUMENT_BYTES, FeedError, FetchError, parse_feed
from worker.http import backoff_delay, retry_after_seconds
from worker.queue import redis_connection

log = logging.getLogger(__name__)

RATE_LIMIT_KEY = "arxiv:rate-limit"
# A Retry-After longer than this is not worth holding a worker for; the next
# scheduled poll tries again.
MAX_RETRY_AFTER = 300.0
MAX_BACKOFF = 300.0

_local_lock = threading.Lock()
_local_next_slot = 0.0


def fetch_feed(group: str) -> bytes:
    """Fetch the RSS feed of one archive group ("cs" or "math+math-ph+...")."""
    return fetch_url(current_app.config["ARXIV_RSS_URL"] + group)


def fetch_oai_page(
    *,
    from_date: date | None = None,
    until_date: date | None = None,
    resumption_token: str | None = None,
) -> bytes:
    """Fetch one ListRecords page of arXivRaw records (the first by dates, later ones by token)."""
    params = {"verb": "ListRecords"}
    if resumption_token:
        params["resumptionToken"] = resumption_token
    else:
        params["metadataPrefix"] = "arXivRaw"
        if from_date:
            params["from"] = from_date.isoformat()
        if until_date:
            params["until"] = until_date.isoformat()
    return fetch_url(current_app.config["ARXIV_OAI_URL"], params)


def user_agent() -> str:
    """Name the service and whom to contact, as arXiv asks of automated clients."""
    config = current_app.config
    return f"arxiv-digest-newsletter/1.0 (+{config['BASE_URL']}; mailto:{config['ARXIV_CONTACT']})"


def fetch_url(
    url: str, params: dict | None = None, *, sleep: Callable[[float], None] = time.sleep
) -> bytes:
    """GET `url` politely: shared rate limit, timeouts, retries with backoff; return the body.

    HTTP 400 is arXiv's answer to a bad query (its error channel): a FeedError,
    never retried. Timeouts, connection errors, 429 and 5xx are retried
    ARXIV_RETRIES times; anything else is a FetchError at once.
    """
    config = current_app.config
    timeout = config["ARXIV_TIMEOUT"]
    attempts = max(1, config["ARXIV_RETRIES"] + 1)
    for attempt in range(attempts):
        wait_for_turn(config["ARXIV_MIN_INTERVAL"], sleep=sleep)
        retry_after = None
        try:
            with requests.get(
                url,
                params=params,
                headers={"User-Agent": user_agent(), "Accept-Encoding": "gzip"},
                timeout=(timeout, timeout),
                stream=True,
            ) as response:
                body = _read_capped(response, deadline=time.monotonic() + 4 * timeout)
                status = response.status_code
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            problem = f"{type(exc).__name__}"
        else:
            if status == 200:
                return body
            if status == 400:
                parse_feed(body)  # raises FeedError with arXiv's own message when it has one
                raise FeedError(f"HTTP 400 from {response.url}: arXiv rejected the query")
            if status != 429 and status < 500:
                raise FetchError(f"HTTP {status} from {response.url}")
            problem = f"HTTP {status}"
        if attempt == attempts - 1:
            raise FetchError(f"{url}: {problem}, giving up after {attempts} attempts")
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            raise FetchError(
                f"{url}: {problem}, arXiv asks to wait {retry_after:.0f} s; giving up for now"
            )
        delay = backoff_delay(attempt, config["ARXIV_BACKOFF"], MAX_BACKOFF)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.warning(
            "arXiv %s: %s (attempt %d/%d); retrying in %.1f s",
            url,
            problem,
            attempt + 1,
            attempts,
            delay,
        )
        sleep(delay)
    raise AssertionError("unreachable")


def _read_capped(response: requests.Response, deadline: float) -> bytes:
    chunks = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise FeedError(f"response from {response.url} exceeds {MAX_DOCUMENT_BYTES:,} bytes")
        if time.monotonic() > deadline:
            # A server dripping bytes defeats the per-read timeout; cap the total.
            raise requests.Timeout(f"reading {response.url} took too long")
        chunks.append(chunk)
    return b"".join(chunks)


def wait_for_turn(min_interval: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Block until this process may send arXiv a request: one per `min_interval` s per deployment.

    With Redis, a key set with NX and a TTL of `min_interval` is the token: only
    one process can set it, and it frees itself when the interval is over. Without
    Redis there is only this process, and a lock does.
    """
    if min_interval <= 0:
        return
    connection = redis_connection()
    if connection is None:
        global _local_next_slot
        with _local_lock:
            now = time.monotonic()
            if _local_next_slot > now:
                sleep(_local_next_slot - now)
            _local_next_slot = max(now, _local_next_slot) + min_interval
        return
    interval_ms = max(1, int(min_interval * 1000))
    while not connection.set(RATE_LIMIT_KEY, "1", nx=True, px=interval_ms):
        remaining_ms = connection.pttl(RATE_LIMIT_KEY)
        sleep(max(remaining_ms, 5) / 1000)
