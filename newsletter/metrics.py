"""`GET /metrics`: the service's figures in Prometheus text format, read at scrape time.

Registered by `create_app`. Off (404) unless METRICS_TOKEN is set; then the
scraper must send `Authorization: Bearer <token>` (401 otherwise). Each scrape
builds its own CollectorRegistry holding one `NewsletterCollector`, which
queries the database (and Redis's queue length) then: nothing is counted in
process memory, so every web worker answers the same, and nothing happens at
import. Like /healthz, it reads models and Redis directly, never sending or
arXiv client code.

The per-day figures cover the last RECENT_DATES listing dates, so a scrape's
cost does not grow with the years of history (the queries use the
listing_date indexes).
"""

import hmac
from collections.abc import Iterator
from datetime import datetime, timedelta

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import db
from newsletter.health import monitor_redis
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    FeedFetch,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
)
from worker.queue import QUEUE_NAME

bp = Blueprint("metrics", __name__)

# Listing dates the per-day figures cover (about six weeks of announcements).
RECENT_DATES = 30
# Windows of the send rate, in minutes.
SEND_WINDOWS = (5, 60)
# Sends happen within hours of a day's dispatch (retries take at most a few
# hours), so the send-rate count looks at rows of the last week only, by index.
SEND_LOOKBACK_DAYS = 7


@bp.get("/metrics")
def metrics():
    """The figures, for a scraper holding METRICS_TOKEN."""
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        abort(404)
    if not bearer_matches(request.headers.get("Authorization", ""), token):
        return Response(
            "a bearer token is required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
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


class NewsletterCollector:
    """Reads every figure from the database when the registry is collected (one scrape)."""

    def __init__(self, session: Session, queue_length, now: datetime | None = None):
        self.session = session
        self.queue_length = queue_length
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or db.utcnow()
        yield self.papers()
        yield self.deliveries()
        yield self.sent_recently(now)
        yield from self.subscribers()
        yield from self.translations()
        yield self.feed_fetch_warnings()
        yield from self.queue()

    def _by_recent_date(self, date_column, *columns, value=None) -> list:
        """(listing date, *columns, value) rows over the last RECENT_DATES dates of `date_column`.

        `value` defaults to the row count.
        """
        dates = select(date_column).distinct().order_by(date_column.desc()).limit(RECENT_DATES)
        oldest = self.session.scalar(select(func.min(dates.subquery().c[0])))
        if oldest is None:
            return []
        return list(
            self.session.execute(
                select(date_column, *columns, func.count() if value is None else value)
                .where(date_column >= oldest)
                .group_by(date_column, *columns)
            )
        )

    def papers(self) -> Metric:
        family = GaugeMetricFamily(
            "newsletter_papers",
            f"Papers stored per listing date and announce type (last {RECENT_DATES} dates).",
            labels=["listing_date", "announce_type"],
        )
        for day, announce_type, count in self._by_recent_date(
            Paper.listing_date, Paper.announce_type
        ):
            family.add_metric([day.isoformat(), announce_type.value], count)
        return family

    def deliveries(self) -> Metric:
        family = GaugeMetricFamily(
            "newsletter_deliveries",
            f"Digest deliveries per listing date and status (last {RECENT_DATES} dates).",
            labels=["listing_date", "status"],
        )
        for day, status, count in self._by_recent_date(Delivery.listing_date, Delivery.status):
            family.add_metric([day.isoformat(), status.value], count)
        return family

    def sent_recently(self, now: datetime) -> Metric:
        family = GaugeMetricFamily(
            "newsletter_deliveries_sent_recently",
            "Digests sent in the last `minutes` minutes (the send rate).",
            labels=["minutes"],
        )
        since = {minutes: now - timedelta(minutes=minutes) for minutes in SEND_WINDOWS}
        counts = self.session.execute(
            select(
                *(func.count().filter(Delivery.sent_at >= since[m]) for m in SEND_WINDOWS)
            ).where(
                Delivery.listing_date >= (now - timedelta(days=SEND_LOOKBACK_DAYS)).date(),
                Delivery.status == DeliveryStatus.SENT,
            )
        ).one()
        for minutes, count in zip(SEND_WINDOWS, counts, strict=True):
            family.add_metric([str(minutes)], count)
        return family

    def subscribers(self) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "newsletter_subscribers",
            "Subscribers per status (blocklisted = suppressed after hard bounces or by hand).",
            labels=["status"],
        )
        counts = dict(
            self.session.execute(
                select(Subscriber.status, func.count()).group_by(Subscriber.status)
            ).all()
        )
        for status in SubscriberStatus:
            by_status.add_metric([status.value], counts.get(status, 0))
        yield by_status
        bounces = self.session.scalar(select(func.coalesce(func.sum(Subscriber.bounce_count), 0)))
        yield GaugeMetricFamily(
            "newsletter_subscriber_bounces",
            "Hard bounces counted on the stored subscribers (toward BOUNCE_LIMIT).",
            value=bounces,
        )

    def translations(self) -> Iterator[Metric]:
        done = GaugeMetricFamily(
            "newsletter_translations",
            "Paper translations stored, per target language and status.",
            labels=["language", "status"],
        )
        tokens = GaugeMetricFamily(
            "newsletter_translation_tokens",
            "Tokens the translation endpoint reported, per target language.",
            labels=["language"],
        )
        rows = self.session.execute(
            select(
                Translation.language,
                Translation.status,
                func.count(),
                func.coalesce(func.sum(Translation.tokens), 0),
            ).group_by(Translation.language, Translation.status)
        )
        token_sums: dict[str, int] = {}
        for language, status, count, token_sum in rows:
            done.add_metric([language, status.value], count)
            token_sums[language] = token_sums.get(language, 0) + token_sum
        for language, token_sum in sorted(token_sums.items()):
            tokens.add_metric([language], token_sum)
        yield done
        yield tokens

    def feed_fetch_warnings(self) -> Metric:
        family = GaugeMetricFamily(
            "newsletter_feed_fetch_warnings",
            "Archive-group feed fetches with a warning (error, stale or short feed) "
            f"per listing date (last {RECENT_DATES} dates).",
            labels=["listing_date"],
        )
        for day, count in self._by_recent_date(
            FeedFetch.listing_date, value=func.count(FeedFetch.warning)
        ):
            family.add_metric([day.isoformat()], count)
        return family

    def queue(self) -> Iterator[Metric]:
        """The RQ queue's length and whether Redis answered; nothing in the embedded mode."""
        try:
            length = self.queue_length()
        except RedisError:
            yield GaugeMetricFamily("newsletter_redis_up", "Whether Redis answered.", value=0)
            return
        if length is None:
            return
        yield GaugeMetricFamily("newsletter_redis_up", "Whether Redis answered.", value=1)
        yield GaugeMetricFamily(
            "newsletter_queue_jobs",
            "Jobs waiting in the RQ queue (ingest, translation, dispatch, drains).",
            value=length,
        )
