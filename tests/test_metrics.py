"""newsletter/metrics.py: GET /metrics on the real app, database and Redis, read back with
prometheus-client's own parser and checked against the rows each test made."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import free_port
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue

from newsletter import db, replace_settings
from newsletter.metrics_collector import DELIVERY_DATES, RECENT_DATES
from newsletter.models import (
    AnnounceType,
    Delivery,
    DeliveryStatus,
    FeedFetch,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
    TranslationStatus,
)
from worker.queue import QUEUE_NAME

TOKEN = "metrics-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Recent dates: the send rate looks at the last week's deliveries only.
TODAY = datetime.now(UTC).date()
DAY, NEXT = TODAY - timedelta(days=2), TODAY - timedelta(days=1)
D1, D2 = DAY.isoformat(), NEXT.isoformat()


@pytest.fixture
def config(config):
    config["METRICS_TOKEN"] = TOKEN
    return config


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Sample name and sorted labels -> value, as a Prometheus server would read them."""
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def add(*rows) -> None:
    db.session().add_all(rows)
    db.session().commit()


def paper(n: int, listing_date: date, announce_type: AnnounceType) -> Paper:
    return Paper(
        arxiv_id=f"2411.{n:05d}",
        version=1,
        title="t",
        authors=["A"],
        categories=["cs.LG"],
        abstract="a",
        listing_date=listing_date,
        announce_type=announce_type,
    )


def subscriber(n: int, status: SubscriberStatus, bounces: int = 0) -> Subscriber:
    return Subscriber(
        email=f"r{n}@example.org",
        email_key=f"r{n}@example.org",
        status=status,
        bounce_count=bounces,
    )


def delivery(n: int, who: Subscriber, listing_date: date, status: DeliveryStatus, sent_at=None):
    return Delivery(
        subscriber_id=who.id,
        listing_date=listing_date,
        status=status,
        message_id=f"<{n}@digest.test>",
        sent_at=sent_at,
    )


def translation(n: int, language: str, status: TranslationStatus, tokens: int) -> Translation:
    return Translation(
        arxiv_id=f"2411.{n:05d}", version=1, language=language, status=status, tokens=tokens
    )


def test_metrics_are_off_without_a_token(app, client):
    replace_settings(app, METRICS_TOKEN=None)

    assert client.get("/metrics", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
def test_metrics_need_the_bearer_token(client, headers):
    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "newsletter_" not in response.get_data(as_text=True)


def test_figures_match_the_rows(client):
    now = db.utcnow()
    add(ListingDay(listing_date=DAY), ListingDay(listing_date=NEXT))
    add(
        paper(1, DAY, AnnounceType.NEW),
        paper(2, DAY, AnnounceType.NEW),
        paper(3, DAY, AnnounceType.CROSS),
        paper(4, NEXT, AnnounceType.REPLACE),
        paper(5, NEXT, AnnounceType.REPLACE_CROSS),
    )
    people = [
        subscriber(0, SubscriberStatus.CONFIRMED),
        subscriber(1, SubscriberStatus.CONFIRMED, bounces=1),
        subscriber(2, SubscriberStatus.BLOCKLISTED, bounces=3),
        subscriber(3, SubscriberStatus.UNSUBSCRIBED),
        subscriber(4, SubscriberStatus.UNCONFIRMED),
    ]
    add(*people)
    a, b, c = people[:3]
    add(
        delivery(1, a, DAY, DeliveryStatus.SENT, now - timedelta(hours=20)),
        delivery(2, b, DAY, DeliveryStatus.FAILED),
        delivery(3, c, DAY, DeliveryStatus.SKIPPED),
        delivery(4, a, NEXT, DeliveryStatus.SENT, now - timedelta(minutes=2)),
        delivery(5, b, NEXT, DeliveryStatus.SENT, now - timedelta(minutes=30)),
        delivery(6, c, NEXT, DeliveryStatus.QUEUED),
    )
    done, failed = TranslationStatus.DONE, TranslationStatus.FAILED
    add(
        translation(1, "zh", done, 900),
        translation(2, "zh", done, 700),
        translation(3, "zh", failed, 0),
        translation(1, "ja", done, 50),
    )
    add(
        FeedFetch(listing_date=DAY, archive_group="cs", source="rss"),
        FeedFetch(listing_date=DAY, archive_group="math", source="rss", warning="HTTP 503"),
        FeedFetch(listing_date=NEXT, archive_group="cs", source="rss", warning="stale"),
        FeedFetch(listing_date=NEXT, archive_group="math", source="rss", warning="empty"),
    )

    samples = scrape(client)

    def value(name: str, **labels) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    papers = {k: v for k, v in samples.items() if k[0] == "newsletter_papers"}
    assert papers == {
        ("newsletter_papers", (("announce_type", "new"), ("listing_date", D1))): 2,
        ("newsletter_papers", (("announce_type", "cross"), ("listing_date", D1))): 1,
        ("newsletter_papers", (("announce_type", "replace"), ("listing_date", D2))): 1,
        (
            "newsletter_papers",
            (("announce_type", "replace-cross"), ("listing_date", D2)),
        ): 1,
    }
    assert value("newsletter_deliveries", listing_date=D1, status="sent") == 1
    assert value("newsletter_deliveries", listing_date=D1, status="failed") == 1
    assert value("newsletter_deliveries", listing_date=D1, status="skipped") == 1
    assert value("newsletter_deliveries", listing_date=D2, status="sent") == 2
    assert value("newsletter_deliveries", listing_date=D2, status="queued") == 1
    # Sent 2 and 30 minutes ago (and 20 hours ago, in neither window).
    assert value("newsletter_deliveries_sent_recently", minutes="5") == 1
    assert value("newsletter_deliveries_sent_recently", minutes="60") == 2
    assert value("newsletter_subscribers", status="confirmed") == 2
    assert value("newsletter_subscribers", status="blocklisted") == 1
    assert value("newsletter_subscribers", status="unsubscribed") == 1
    assert value("newsletter_subscribers", status="unconfirmed") == 1
    assert value("newsletter_subscribers", status="paused") == 0
    assert value("newsletter_subscriber_bounces") == 4
    assert value("newsletter_translations", language="zh", status="done") == 2
    assert value("newsletter_translations", language="zh", status="failed") == 1
    assert value("newsletter_translations", language="ja", status="done") == 1
    assert value("newsletter_translation_tokens", language="zh") == 1600
    assert value("newsletter_translation_tokens", language="ja") == 50
    assert value("newsletter_feed_fetch_warnings", listing_date=D1) == 1
    assert value("newsletter_feed_fetch_warnings", listing_date=D2) == 2
    # Embedded mode: no queue, no Redis figure.
    assert not [k for k in samples if k[0].startswith(("newsletter_queue", "newsletter_redis"))]
    # Nothing went to the process-wide default registry.
    assert b"newsletter_" not in generate_latest(REGISTRY)


def test_per_day_figures_cover_the_last_listing_dates_ingested(client):
    days = [date(2024, 1, 1) + timedelta(days=n) for n in range(RECENT_DATES + 2)]
    add(*(ListingDay(listing_date=day, completed_at=db.utcnow()) for day in days))
    add(*(paper(n, day, AnnounceType.NEW) for n, day in enumerate(days)))
    people = [subscriber(n, SubscriberStatus.CONFIRMED) for n in range(DELIVERY_DATES + 1)]
    add(*people)
    old_sent = db.utcnow() - timedelta(minutes=3)  # as if an operator resent an old day
    add(
        *(
            delivery(n, who, day, DeliveryStatus.SENT, old_sent)
            for n, (who, day) in enumerate(zip(people, days[-DELIVERY_DATES - 1 :], strict=True))
        )
    )

    samples = scrape(client)

    def dates(metric: str) -> list[str]:
        return sorted(dict(labels)["listing_date"] for name, labels in samples if name == metric)

    assert dates("newsletter_papers") == [day.isoformat() for day in days[-RECENT_DATES:]]
    assert dates("newsletter_deliveries") == [day.isoformat() for day in days[-DELIVERY_DATES:]]
    # The send rate reads the same dates.
    assert samples[("newsletter_deliveries_sent_recently", (("minutes", "5"),))] == DELIVERY_DATES


def test_queue_depth_from_redis(app, client, redis_url):
    replace_settings(app, REDIS_URL=redis_url)
    connection = Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    # No worker runs here: the jobs stay queued.
    queue.enqueue("worker.jobs.translate_listing_date", "2024-11-28")
    queue.enqueue("worker.jobs.dispatch_digests_job", "2024-11-28")
    connection.close()

    samples = scrape(client)

    assert samples[("newsletter_queue_jobs", ())] == 2
    assert samples[("newsletter_redis_up", ())] == 1


def test_redis_down_is_a_figure_not_an_error(app, client):
    replace_settings(app, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    samples = scrape(client)

    assert samples[("newsletter_redis_up", ())] == 0
    assert ("newsletter_queue_jobs", ()) not in samples
    assert ("newsletter_subscriber_bounces", ()) in samples


def test_the_monitoring_views_import_no_sending_or_arxiv_code():
    forbidden = ("worker.delivery", "worker.arxiv", "worker.translation", "worker.digest")
    code = (
        "import sys, newsletter.health, newsletter.metrics, newsletter.metrics_collector;"
        f"print(sorted(m for m in sys.modules if m.startswith({forbidden!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
