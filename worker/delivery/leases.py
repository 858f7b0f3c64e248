"""Keeping the ledger's claims alive: a retrying connection and the lease heartbeat.

Used by worker/delivery/sending.py while it drains a day. `LedgerConnection` runs
the ledger's statements (worker/delivery/claims.py, ledger.py) in autocommit mode and rides out a database
outage of up to DELIVERY_DB_RETRY_SECONDS; `Heartbeat` renews the drain's
leases every third of DELIVERY_LEASE_SECONDS on a connection of its own.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from worker.delivery.claims import renew

log = logging.getLogger(__name__)

T = TypeVar("T")


class LedgerConnection:
    """An autocommit connection that reconnects and retries through a database outage.

    Each statement of worker/delivery/claims.py and ledger.py is idempotent for its claimer, so running
    it again after a lost reply is safe.
    """

    def __init__(self, engine: Engine, retry_seconds: float):
        self.engine = engine
        self.retry_seconds = retry_seconds
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def run(self, step: Callable[[Connection], T]) -> T:
        """`step(connection)`, retried with backoff for up to `retry_seconds`; then raise."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.1
        while True:
            try:
                return step(self.connection())
            except DBAPIError as error:
                self.close()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("database error, retrying in %.1f s: %s", delay, error.orig)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # a dead connection may fail to close; it is dropped anyway
                log.debug("closing a broken database connection failed", exc_info=True)
            self._connection = None


class Heartbeat:
    """Renews a claimer's leases every third of the lease, on its own connection.

    `valid()` tells the sender whether its leases are certainly still held:
    if renewals fail for most of a lease (the database is unreachable), the
    sender must stop before another worker may take its rows.
    """

    def __init__(self, engine: Engine, claimer: str, lease: timedelta):
        self.claimer = claimer
        self.lease = lease
        self._ledger = LedgerConnection(engine, retry_seconds=0)
        self._stop = threading.Event()
        self._held_until = time.monotonic() + lease.total_seconds()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {claimer}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._ledger.close()

    def claimed(self) -> None:
        """Note a fresh claim: its lease runs from now."""
        self._held_until = max(self._held_until, time.monotonic() + self.lease.total_seconds())

    def valid(self) -> bool:
        # A margin of a sixth of the lease covers clock skew and one slow message.
        return time.monotonic() < self._held_until - self.lease.total_seconds() / 6

    def _run(self) -> None:
        interval = self.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            started = time.monotonic()
            try:
                self._ledger.run(lambda connection: renew(connection, self.claimer, self.lease))
            except DBAPIError as error:
                log.warning("lease renewal failed; trying again in %.0f s: %s", interval, error)
                continue
            self._held_until = started + self.lease.total_seconds()
