"""The operator's status page (newsletter/admin.py) and its SVG charts (newsletter/charts.py).

The charts are checked as XML (xml.etree); the page on the real app and
database: its access rules (off, https, password, rate limit) and the figures
its bars' titles carry for rows written here.
"""

import base64
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from conftest import empty_tables

from newsletter import create_app, db, ratelimit, replace_settings
from newsletter.admin import ADMIN_FAILURES_PER_HOUR, recent_listing_dates, statuses_over_time
from newsletter.charts import Series, bar_chart
from newsletter.db import utcnow
from newsletter.models import (
    AnnounceType,
    Delivery,
    DeliveryStatus,
    FeedFetch,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from worker import calendar

SVG = "{http://www.w3.org/2000/svg}"
PASSWORD = "correct horse battery staple"


def basic(password: str, user: str = "operator") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def chart_tree(markup: str) -> ET.Element:
    """The <svg> element of a chart's markup (the legend after it is HTML)."""
    return ET.fromstring(markup[: markup.index("</svg>") + len("</svg>")])


# --- charts (pure) ---


def test_a_chart_is_valid_svg_with_one_titled_bar_per_day():
    days = ["2026-11-02", "2026-11-03", "2026-11-04"]
    markup = bar_chart(
        "Papers <by> type",
        days,
        [Series("new", [3, 0, None]), Series("cross & co", [1, 5, None])],
    )
    svg = chart_tree(str(markup))
    assert svg.find(f"{SVG}title").text == "Papers <by> type"
    bars = svg.findall(f"{SVG}g")
    assert len(bars) == len(days)
    titles = [bar.find(f"{SVG}title").text for bar in bars]
    assert titles == [
        "2026-11-02: 3 new, 1 cross & co",
        "2026-11-03: 0 new, 5 cross & co",
        "2026-11-04: no figure",
    ]
    # Drawn parts: two stacked rectangles, one (a zero is not drawn), none; plus each hit area.
    drawn = [
        [r for r in bar.findall(f"{SVG}rect") if r.get("fill") != "transparent"] for bar in bars
    ]
    assert [len(parts) for parts in drawn] == [2, 1, 0]
    # The tallest bar (5) fills the plot; 4 is four fifths of it.
    heights = [sum(float(r.get("height")) for r in parts) for parts in drawn]
    assert heights[0] == pytest.approx(heights[1] * 4 / 5, rel=0.01)
    assert "cross &amp; co" in str(markup).split("</svg>")[-1]  # the legend, escaped
    assert 'style="' not in str(markup)  # the CSP allows no inline style


def test_a_chart_scale_label_carries_the_unit_and_no_data_is_not_an_error():
    svg = chart_tree(str(bar_chart("Delay", ["a", "b"], [Series("hours", [1.25, 2.5])], "h")))
    assert "2.5 h" in [text.text for text in svg.iter(f"{SVG}text")]
    empty = chart_tree(str(bar_chart("Empty", ["a"], [Series("x", [None])])))
    assert len(empty.findall(f"{SVG}g")) == 1
    with pytest.raises(ValueError):
        bar_chart("Bad", ["a", "b"], [Series("x", [1])])


def test_statuses_over_time_count_each_reader_by_its_latest_step():
    # (signed up, confirmed, left) as the index of the first day at or after each; 3: never.
    cells = [(0, 0, 3, 5), (0, 1, 3, 2), (1, 3, 3, 1), (0, 0, 2, 4), (0, 3, 1, 1)]
    confirmed, unconfirmed, left = (part.values for part in statuses_over_time(3, cells))
    assert confirmed == [9, 11, 7]
    assert unconfirmed == [3, 1, 1]
    assert left == [0, 1, 5]


def test_recent_listing_dates_follow_the_calendar():
    dates = recent_listing_dates(calendar.due_listing_date(utcnow()), 30)
    assert len(dates) == 30 and dates == sorted(dates)
    assert all(calendar.is_listing_date(day) for day in dates)
    assert calendar.previous_listing_date(dates[1]) == dates[0]


# --- access ---


@pytest.fixture
def admin_app(app):
    replace_settings(app, ADMIN_PASSWORD=PASSWORD)
    ratelimit.reset_local()
    yield app
    ratelimit.reset_local()


def test_the_page_is_off_without_a_password(client):
    assert client.get("/admin/", headers=basic("")).status_code == 404


def test_the_page_asks_for_the_password(admin_app, client):
    response = client.get("/admin/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert client.get("/admin/", headers=basic("wrong")).status_code == 401
    assert client.get("/admin/", headers=basic(PASSWORD[:-1])).status_code == 401
    page = client.get("/admin/", headers=basic(PASSWORD, user="anyone"))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]


def test_wrong_passwords_are_rate_limited_per_address(admin_app, client):
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    statuses = [
        client.get("/admin/", headers=basic(f"guess{n}"), environ_base=attacker).status_code
        for n in range(ADMIN_FAILURES_PER_HOUR + 1)
    ]
    assert statuses == [401] * ADMIN_FAILURES_PER_HOUR + [429]
    # Once refused, even the right password is not compared.
    refused = client.get("/admin/", headers=basic(PASSWORD), environ_base=attacker)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # Another address is not affected, and asking without a password never counts.
    other = {"REMOTE_ADDR": "198.51.100.4"}
    for _ in range(ADMIN_FAILURES_PER_HOUR + 2):
        assert client.get("/admin/", environ_base=other).status_code == 401
    assert client.get("/admin/", headers=basic(PASSWORD), environ_base=other).status_code == 200


@pytest.mark.parametrize(
    ("base_url", "remote", "status"),
    [
        ("http://digest.test", "203.0.113.9", 403),  # plain http from afar
        ("https://digest.test", "203.0.113.9", 200),
        ("http://127.0.0.1", "127.0.0.1", 200),  # from this machine
        ("http://[::1]", "::1", 200),
    ],
)
def test_plain_http_is_refused_outside_dev_unless_local(config, base_url, remote, status):
    config["TESTING"] = False

    app = create_app({**config, "ADMIN_PASSWORD": PASSWORD})
    try:
        response = app.test_client().get(
            "/admin/",
            base_url=base_url,
            headers=basic(PASSWORD),
            environ_base={"REMOTE_ADDR": remote},
        )
        assert response.status_code == status
    finally:
        app.extensions["db_engine"].dispose()


def test_wrong_passwords_are_counted_in_redis_for_every_web_process(
    config, redis_url, database_url
):

    config.update(REDIS_URL=redis_url, ADMIN_PASSWORD=PASSWORD)
    empty_tables(database_url)
    apps = [create_app(config), create_app(config)]
    try:
        attacker = {"REMOTE_ADDR": "203.0.113.10"}
        for n in range(ADMIN_FAILURES_PER_HOUR):
            client = apps[n % 2].test_client()
            assert (
                client.get("/admin/", headers=basic("guess"), environ_base=attacker).status_code
                == 401
            )
        for app in apps:
            answer = app.test_client().get(
                "/admin/", headers=basic(PASSWORD), environ_base=attacker
            )
            assert answer.status_code == 429
    finally:
        for app in apps:
            app.extensions["db_engine"].dispose()


@pytest.mark.parametrize(("proto", "status"), [("https", 200), ("http", 403)])
def test_behind_a_trusted_proxy_the_forwarded_scheme_decides(config, proto, status):

    config["TESTING"] = False
    app = create_app({**config, "ADMIN_PASSWORD": PASSWORD, "TRUSTED_PROXIES": 1})
    try:
        response = app.test_client().get(
            "/admin/",
            headers={
                **basic(PASSWORD),
                "X-Forwarded-Proto": proto,
                "X-Forwarded-For": "203.0.113.9",
            },
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        assert response.status_code == status
    finally:
        app.extensions["db_engine"].dispose()


# --- figures ---


def add_day(session, listing_date, subscribers):
    """Papers, fetches, deliveries of one listing date, as ingest and sending leave them."""
    session.add(ListingDay(listing_date=listing_date, completed_at=None))
    session.add(
        FeedFetch(
            listing_date=listing_date,
            archive_group="cs",
            source="rss",
            feed_date=listing_date,
            warning="feed dated the day before",
        )
    )
    for n, kind in enumerate([AnnounceType.NEW] * 3 + [AnnounceType.CROSS]):
        session.add(
            Paper(
                arxiv_id=f"{listing_date:%y%m}.{listing_date:%d}{n:03d}",
                version=1,
                title="A paper",
                authors=["A. Author"],
                categories=["cs.LG"],
                abstract="Text.",
                listing_date=listing_date,
                announce_type=kind,
            )
        )
    announced = calendar.announcement_instant(listing_date)
    statuses = [DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.FAILED]
    for n, (subscriber, status) in enumerate(zip(subscribers, statuses, strict=True)):
        sent = status is DeliveryStatus.SENT
        session.add(
            Delivery(
                subscriber_id=subscriber.id,
                listing_date=listing_date,
                status=status,
                message_id=f"<{listing_date}.{n}@digest.test>",
                sent_at=announced + timedelta(minutes=30 * (n + 1)) if sent else None,
                bounced_at=announced + timedelta(hours=5) if n == 1 else None,
            )
        )


def make_readers(session, dates):
    """Three readers: one confirmed throughout, one confirmed and one gone at dates[10]."""
    long_ago = calendar.announcement_instant(dates[0]) - timedelta(days=30)
    joined = calendar.announcement_instant(dates[10]) - timedelta(hours=1)
    people = [
        Subscriber(
            email=f"r{n}@example.org",
            email_key=f"r{n}@example.org",
            status=status,
            created_at=long_ago,
            confirmed_at=confirmed,
            unsubscribed_at=left,
            bounce_count=bounces,
        )
        for n, (status, confirmed, left, bounces) in enumerate(
            [
                (SubscriberStatus.CONFIRMED, long_ago, None, 0),
                (SubscriberStatus.CONFIRMED, joined, None, 1),
                (SubscriberStatus.UNSUBSCRIBED, long_ago, joined, 3),
            ]
        )
    ]
    session.add_all(people)
    session.flush()
    return people


def test_the_page_plots_the_listing_dates_figures(admin_app, client):
    session = db.session()
    dates = recent_listing_dates(calendar.due_listing_date(utcnow()), 30)
    people = make_readers(session, dates)
    add_day(session, dates[-2], people)
    session.commit()

    page = client.get("/admin/", headers=basic(PASSWORD)).get_data(as_text=True)
    svgs = [
        ET.fromstring("<svg xmlns" + part[: part.index("</svg>")] + "</svg>")
        for part in page.split("<svg xmlns")[1:]
    ]
    assert len(svgs) == 5
    titles = [[g.find(f"{SVG}title").text for g in svg.findall(f"{SVG}g")] for svg in svgs]
    assert all(len(bars) == 30 for bars in titles)
    day = dates[-2].isoformat()
    papers, digests, delay, readers, bounces = (bars[-2] for bars in titles)
    assert papers == f"{day}: 3 new, 1 cross, 0 replace, 0 replace-cross"
    assert digests == f"{day}: 2 sent, 1 failed, 0 skipped"
    assert delay == f"{day}: 1 hours"  # the second of two sent, an hour after the announcement
    assert readers == f"{day}: 2 confirmed, 0 unconfirmed, 1 unsubscribed"
    assert bounces == f"{day}: 1 bounced"
    assert titles[2][-1] == f"{dates[-1]}: no figure"
    # Before `joined` the second reader was unconfirmed and the third still subscribed.
    assert titles[3][0] == f"{dates[0]}: 2 confirmed, 1 unconfirmed, 0 unsubscribed"
    assert f"{day}: listing date INCOMPLETE" in page
    assert f"{day} cs: feed dated the day before" in page
    assert "Subscribers with a bounce counted: 2; at BOUNCE_LIMIT (3) or over: 1." in page
