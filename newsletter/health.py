"""`GET /healthz`: is the service doing its job? For monitoring and uptime checks.

Registered by `create_app`. Reads the database (engine, models) and Redis
directly; never imports sending or arXiv client code (the web process must
not). Four checks, each cheap (one indexed query or one PING):

- database: a `SELECT 1`;
- redis: a PING when REDIS_URL is set ("not configured" in embedded mode, no failure);
- listing: the latest complete listing date is not behind the arXiv calendar
  (a listing date should be complete INGEST_COMPLETE_DEADLINE_HOURS after its
  feeds rebuild; HEALTH_LISTING_GRACE_HOURS later it is overdue). Weekends and
  holidays have no listing date, so they never count as late;
- deliveries: no queued delivery due to be sent has waited longer than
  HEALTH_QUEUED_MAX_MINUTES.

200 when all pass, 503 otherwise, with a JSON body of each check's status and
figures. Never a 500, and no settings or addresses in the body: a failed check
names the error's type only (the log has the rest).
"""

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Blueprint, Flask, Response, current_app, jsonify
from redis import Redis
from sqlalchemy import Connection, func, select, text

from newsletter import db
from newsletter.config import settings
from newsletter.models import Delivery, DeliveryStatus, ListingDay
from worker import calendar

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# A monitor's request should answer within seconds even when Redis hangs.
REDIS_TIMEOUT_SECONDS = 2
OK, FAIL = "ok", "fail"


def monitor_redis(app: Flask) -> Redis | None:
    """The app's Redis client for /healthz and /metrics (short timeouts), or None without REDIS_URL."""
    url = settings(app).REDIS_URL
    if not url:
        return None
    cached = app.extensions.get("monitor_redis")
    if cached is None or cached[0] != url:
        client = Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        cached = app.extensions["monitor_redis"] = (url, client)
    return cached[1]


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Run every check; 200 if all pass, else 503; JSON either way."""
    config = settings()
    now = db.utcnow()
    checks: dict[str, dict] = {}
    try:
        with db.engine().connect() as connection:
            checks["database"] = _timed(lambda: connection.execute(text("SELECT 1")))
            checks["listing"] = _guard(
                "listing",
                lambda: listing_status(
                    *latest_complete(connection),
                    now,
                    deadline_hours=config.INGEST_COMPLETE_DEADLINE_HOURS,
                    grace_hours=config.HEALTH_LISTING_GRACE_HOURS,
                ).as_dict(),
            )
            checks["deliveries"] = _guard(
                "deliveries",
                lambda: queue_status(connection, now, config.HEALTH_QUEUED_MAX_MINUTES),
            )
    except Exception as error:  # the database cannot be reached: its checks cannot run
        log.warning("healthz: database: %s: %s", type(error).__name__, error)
        checks["database"] = {"status": FAIL, "error": type(error).__name__}
        checks.setdefault("listing", {"status": FAIL, "error": "database unavailable"})
        checks.setdefault("deliveries", {"status": FAIL, "error": "database unavailable"})
    checks["redis"] = redis_status(monitor_redis(current_app))
    healthy = all(check["status"] != FAIL for check in checks.values())
    body = {"status": OK if healthy else FAIL, "time": now.isoformat(), "checks": checks}
    return jsonify(body), 200 if healthy else 503


def _timed(run) -> dict:
    started = time.perf_counter()
    run()
    return {"status": OK, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _guard(name: str, check) -> dict:
    """A check's result, or "fail" with the error's type: one bad check must not make a 500."""
    try:
        return check()
    except Exception as error:
        log.warning("healthz: %s: %s: %s", name, type(error).__name__, error)
        return {"status": FAIL, "error": type(error).__name__}


def redis_status(redis: Redis | None) -> dict:
    """PING Redis; "not configured" in the embedded mode (jobs run in-process)."""
    if redis is None:
        return {"status": "not configured"}
    try:
        return _timed(redis.ping)
    except Exception as error:
        log.warning("healthz: redis: %s: %s", type(error).__name__, error)
        return {"status": FAIL, "error": type(error).__name__}


# --- listing dates ---


def latest_complete(connection: Connection) -> tuple[date | None, datetime | None]:
    """The latest complete listing date and when it completed, or (None, None)."""
    row = connection.execute(
        select(ListingDay.listing_date, ListingDay.completed_at)
        .where(ListingDay.completed_at.is_not(None))
        .order_by(ListingDay.listing_date.desc())
        .limit(1)
    ).first()
    return (row.listing_date, row.completed_at) if row else (None, None)


@dataclass(frozen=True)
class ListingStatus:
    ok: bool
    latest_complete: date | None
    completed_at: datetime | None
    # The first listing date after the latest complete one, and how long past
    # its completion deadline (plus grace) it is; 0 while not yet due.
    next_due: date | None
    overdue_hours: float

    def as_dict(self) -> dict:
        return {
            "status": OK if self.ok else FAIL,
            "latest_complete": self.latest_complete.isoformat() if self.latest_complete else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "overdue_hours": self.overdue_hours,
        }


def completion_deadline(listing_date: date, deadline_hours: float) -> datetime:
    """When a listing date must be complete: ingest's deadline after its feeds rebuild."""
    return calendar.feed_rebuild_instant(listing_date) + timedelta(hours=deadline_hours)


def listing_status(
    latest: date | None,
    completed_at: datetime | None,
    now: datetime,
    *,
    deadline_hours: float,
    grace_hours: float,
) -> ListingStatus:
    """Whether the latest complete listing date keeps up with arXiv's calendar (pure).

    The listing date after `latest` should be complete by its deadline; past
    it by more than `grace_hours` (the poll runs every 15 minutes), ingest is
    stuck. Counting listing dates, not hours, keeps weekends and holidays quiet.
    """
    if latest is None:
        return ListingStatus(False, None, None, None, 0.0)
    upcoming = calendar.next_listing_date(latest)
    late = now - completion_deadline(upcoming, deadline_hours)
    overdue_hours = max(0.0, round(late.total_seconds() / 3600, 1))
    ok = late <= timedelta(hours=grace_hours)
    return ListingStatus(ok, latest, completed_at, upcoming, overdue_hours)


# --- deliveries ---


def queue_status(connection: Connection, now: datetime, max_minutes: int) -> dict:
    """Queued deliveries and how long the oldest one due to be sent has waited.

    A row deferred after a 4xx reply is due from its next attempt, not from when
    it was made: waiting for its retry is not being stuck.
    """
    due_since = func.coalesce(Delivery.next_attempt_at, Delivery.created_at)
    queued, oldest = connection.execute(
        select(func.count(), func.min(due_since)).where(Delivery.status == DeliveryStatus.QUEUED)
    ).one()
    waited = max(0.0, (now - oldest).total_seconds() / 60) if oldest is not None else None
    return {
        "status": OK if waited is None or waited <= max_minutes else FAIL,
        "queued": queued,
        "oldest_queued_minutes": round(waited, 1) if waited is not None else None,
        "max_minutes": max_minutes,
    }
