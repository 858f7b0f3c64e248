"""`GET /metrics`: the service's figures in Prometheus text format, read at scrape time.

Registered by `create_app`. Off (404) unless METRICS_TOKEN is set; then the
scraper must send `Authorization: Bearer <token>` (401 otherwise). Each scrape
builds its own CollectorRegistry holding one `NewsletterCollector`
(newsletter/metrics_collector.py), which queries the database (and Redis's
queue length) then: nothing is counted in process memory, so every web worker
answers the same, and nothing happens at import. Like /healthz, it reads models and Redis directly, never sending or
arXiv client code.
"""

import hmac

from flask import Blueprint, Response, abort, current_app, request
from rq import Queue

from newsletter import db
from newsletter.config import settings
from newsletter.health import monitor_redis
from worker.queue import QUEUE_NAME

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """The figures, for a scraper holding METRICS_TOKEN."""
    token = settings().METRICS_TOKEN
    if not token:
        abort(404)
    if not bearer_matches(request.headers.get("Authorization", ""), token):
        return Response(
            "a bearer token is required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    # Imported here: prometheus-client and the collector cost ~20 ms of CPU at every
    # process start, and only a scrape needs them (the worker and the CLI never do).
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from newsletter.metrics_collector import NewsletterCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NewsletterCollector(db.session(), queue_length))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def bearer_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries `token`, compared in constant time."""
    scheme, _, sent = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


def queue_length() -> int | None:
    """Jobs waiting in the RQ queue, or None in the embedded mode (no Redis).

    Raises RedisError when Redis is configured but does not answer.
    """
    redis = monitor_redis(current_app)
    if redis is None:
        return None
    return Queue(QUEUE_NAME, connection=redis).count
