"""The figures `GET /metrics` serves, read from the database (and Redis's queue length).

Used by the view in newsletter/metrics.py, which imports this module (and with it
prometheus-client) when a scrape comes: the other processes never need either.
The per-day figures cover the last listing dates ingested (ListingDay rows),
so a scrape's cost does not grow with the years of history (the queries use
the listing_date indexes).
"""

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import db
from newsletter.models import (
    Delivery,
    FeedFetch,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
)

# Listing dates the papers and feed figures cover (about six weeks of announcements).
RECENT_DATES = 30
# Listing dates the delivery figures cover. Only the latest two get digests
# (each poll dispatches the due date and the one before), so older days no
# longer change; and a day is a row per subscriber, so each date read costs
# (on PostgreSQL, 100k rows a date: ~60 ms a date per scrape on the test machine).
DELIVERY_DATES = 3
# Windows of the send rate, in minutes.
SEND_WINDOWS = (5, 60)


class NewsletterCollector:
    """Reads every figure from the database when the registry is collected (one scrape)."""

    def __init__(self, session: Session, queue_length, now: datetime | None = None):
        self.session = session
        self.queue_length = queue_length
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or db.utcnow()
        papers_since = self._oldest_of_last(RECENT_DATES)
        deliveries_since = self._oldest_of_last(DELIVERY_DATES)
        yield self.papers(papers_since)
        yield from self.deliveries(now, deliveries_since)
        yield from self.subscribers()
        yield from self.translations()
        yield self.feed_fetch_warnings(papers_since)
        yield from self.queue()

    def _oldest_of_last(self, count: int) -> date | None:
        """The oldest of the last `count` listing dates ingested, or None before the first."""
        last = (
            select(ListingDay.listing_date)
            .order_by(ListingDay.listing_date.desc())
            .limit(count)
            .subquery()
        )
        return self.session.scalar(select(func.min(last.c.listing_date)))

    def _per_day(self, since: date | None, date_column, *columns, values=None) -> list:
        """(listing date, *columns, *values) rows for the dates from `since`, grouped by date
        and `columns`; `values` are aggregates (default: the row count)."""
        if since is None:
            return []
        return list(
            self.session.execute(
                select(date_column, *columns, *(values or [func.count()]))
                .where(date_column >= since)
                .group_by(date_column, *columns)
            )
        )

    def papers(self, since: date | None) -> Metric:
        family = GaugeMetricFamily(
            "newsletter_papers",
            f"Papers stored per listing date and announce type (last {RECENT_DATES} dates).",
            labels=["listing_date", "announce_type"],
        )
        for day, announce_type, count in self._per_day(
            since, Paper.listing_date, Paper.announce_type
        ):
            family.add_metric([day.isoformat(), announce_type.value], count)
        return family

    def deliveries(self, now: datetime, since: date | None) -> Iterator[Metric]:
        """Deliveries per listing date and status, and the send rate, from one read of the rows."""
        by_status = GaugeMetricFamily(
            "newsletter_deliveries",
            f"Digest deliveries per listing date and status (last {DELIVERY_DATES} dates).",
            labels=["listing_date", "status"],
        )
        sent = GaugeMetricFamily(
            "newsletter_deliveries_sent_recently",
            "Digests sent in the last `minutes` minutes (the send rate).",
            labels=["minutes"],
        )
        windows = [
            func.count().filter(Delivery.sent_at >= now - timedelta(minutes=m))
            for m in SEND_WINDOWS
        ]
        totals = [0] * len(SEND_WINDOWS)
        for day, status, count, *recent in self._per_day(
            since, Delivery.listing_date, Delivery.status, values=[func.count(), *windows]
        ):
            by_status.add_metric([day.isoformat(), status.value], count)
            totals = [total + n for total, n in zip(totals, recent, strict=True)]
        for minutes, total in zip(SEND_WINDOWS, totals, strict=True):
            sent.add_metric([str(minutes)], total)
        yield by_status
        yield sent

    def subscribers(self) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "newsletter_subscribers",
            "Subscribers per status (blocklisted = suppressed after hard bounces or by hand).",
            labels=["status"],
        )
        rows = self.session.execute(
            select(
                Subscriber.status,
                func.count(),
                func.coalesce(func.sum(Subscriber.bounce_count), 0),
            ).group_by(Subscriber.status)
        ).all()
        counts = {status: count for status, count, _ in rows}
        for status in SubscriberStatus:
            by_status.add_metric([status.value], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily(
            "newsletter_subscriber_bounces",
            "Hard bounces counted on the stored subscribers (toward BOUNCE_LIMIT).",
            value=sum(bounces for _, _, bounces in rows),
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

    def feed_fetch_warnings(self, since: date | None) -> Metric:
        family = GaugeMetricFamily(
            "newsletter_feed_fetch_warnings",
            "Archive-group feed fetches with a warning (error, stale or short feed) "
            f"per listing date (last {RECENT_DATES} dates).",
            labels=["listing_date"],
        )
        for day, count in self._per_day(
            since, FeedFetch.listing_date, values=[func.count(FeedFetch.warning)]
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
