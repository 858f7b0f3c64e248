"""The arXiv HTTP client: fetching documents as bytes, politely.

Run by ingest (the scheduled poll in worker/arxiv/ingest.py, the OAI-PMH backfill
in worker/arxiv/backfill.py) inside an app context, with the settings they were
given. It owns how we talk to arXiv:
one rate limiter for the whole deployment, a User-Agent that names us,
timeouts, a cap on document size, retries (a tenacity policy: exponential
backoff with jitter, Retry-After honoured, every attempt through the rate
limiter). What the bytes mean is worker/arxiv/feeds.py's job.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import NoReturn, cast

import requests
from redis import Redis
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from newsletter.config import Settings
from worker.arxiv.feeds import MAX_DOCUMENT_BYTES, parse_feed
from worker.arxiv.items import FeedError, FetchError
from worker.http import (
    Transient,
    last_transient,
    retry_after_seconds,
    stop_on_long_retry_after,
    wait_backoff,
)
from worker.queue import redis_connection

log = logging.getLogger(__name__)

RATE_LIMIT_KEY = "arxiv:rate-limit"
# A Retry-After longer than this is not worth holding a worker for; the next
# scheduled poll tries again.
MAX_RETRY_AFTER = 300.0
MAX_BACKOFF = 300.0

_local_lock = threading.Lock()
_local_next_slot = 0.0


def fetch_feed(config: Settings, group: str) -> bytes:
    """Fetch the RSS feed of one archive group ("cs" or "math+math-ph+...")."""
    return fetch_url(config, config.ARXIV_RSS_URL + group)


def fetch_oai_page(
    config: Settings,
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
    return fetch_url(config, config.ARXIV_OAI_URL, params)


def user_agent(config: Settings) -> str:
    """Name the service and whom to contact, as arXiv asks of automated clients."""
    return f"arxiv-digest-newsletter/1.0 (+{config.BASE_URL}; mailto:{config.ARXIV_CONTACT})"


def fetch_url(
    config: Settings,
    url: str,
    params: dict | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """GET `url` politely: shared rate limit, timeouts, retries with backoff; return the body.

    HTTP 400 is arXiv's answer to a bad query (its error channel): a FeedError,
    never retried. Timeouts, connection errors, 429 and 5xx are retried
    ARXIV_RETRIES times; anything else is a FetchError at once.
    """
    attempts = max(1, config.ARXIV_RETRIES + 1)
    min_interval = config.ARXIV_MIN_INTERVAL
    connection = redis_connection(config.REDIS_URL)

    def log_retry(state: RetryCallState) -> None:
        log.warning(
            "arXiv %s: %s (attempt %d/%d); retrying in %.1f s",
            url,
            last_transient(state).problem,
            state.attempt_number,
            attempts,
            state.upcoming_sleep,
        )

    def give_up(state: RetryCallState) -> NoReturn:
        error = last_transient(state)
        if state.attempt_number < attempts:  # stopped by a long Retry-After
            raise FetchError(
                f"{url}: {error.problem}, arXiv asks to wait {error.retry_after:.0f} s; "
                "giving up for now"
            )
        raise FetchError(f"{url}: {error.problem}, giving up after {attempts} attempts")

    retrying = Retrying(
        # Every attempt, the first and each one after its backoff, passes the
        # deployment-wide gate: a retry never reaches arXiv sooner than it allows.
        before=lambda state: wait_for_turn(min_interval, connection, sleep=sleep),
        retry=retry_if_exception_type(Transient),
        wait=wait_backoff(config.ARXIV_BACKOFF, MAX_BACKOFF),
        stop=stop_after_attempt(attempts) | stop_on_long_retry_after(MAX_RETRY_AFTER),
        before_sleep=log_retry,
        retry_error_callback=give_up,
        sleep=sleep,
    )
    return retrying(_get, url, params, config.ARXIV_TIMEOUT, user_agent(config))


def _get(url: str, params: dict | None, timeout: float, agent: str) -> bytes:
    """One attempt: the body of a 200; Transient for what another attempt may cure."""
    try:
        with requests.get(
            url,
            params=params,
            headers={"User-Agent": agent, "Accept-Encoding": "gzip"},
            timeout=(timeout, timeout),
            stream=True,
        ) as response:
            body = _read_capped(response, deadline=time.monotonic() + 4 * timeout)
    except (
        requests.Timeout,
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
    ) as exc:
        raise Transient(type(exc).__name__) from exc
    status = response.status_code
    if status == 200:
        return body
    if status == 400:
        parse_feed(body)  # raises FeedError with arXiv's own message when it has one
        raise FeedError(f"HTTP 400 from {response.url}: arXiv rejected the query")
    if status != 429 and status < 500:
        raise FetchError(f"HTTP {status} from {response.url}")
    raise Transient(f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After")))


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


def wait_for_turn(
    min_interval: float,
    connection: Redis | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until this process may send arXiv a request: one per `min_interval` s per deployment.

    With Redis (`connection`), a key set with NX and a TTL of `min_interval` is
    the token: only one process can set it, and it frees itself when the interval
    is over. Without Redis there is only this process, and a lock does.
    """
    if min_interval <= 0:
        return
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
        # redis-py types a sync client's replies as `Awaitable | Any`; this one is an int.
        remaining_ms = cast(int, connection.pttl(RATE_LIMIT_KEY))
        sleep(max(remaining_ms, 5) / 1000)
