"""newsletter/digests.py: the "view in browser" page, through the Flask test client."""

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from newsletter import db
from newsletter.config import settings
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Keyword,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
)
from newsletter.tokens import make_token, read_token, subscriber_links
from worker.demo.load import DEMO_LISTING_DATE, load_demo

SAMPLE_KEYWORDS = ["reinforcement learning", "diffusion policy"]


def add_subscriber(email: str, keywords: list[str], language: str = "en") -> Subscriber:
    subscriber = Subscriber(
        email=email,
        email_key=email.casefold(),
        status=SubscriberStatus.CONFIRMED,
        language=language,
        timezone="Asia/Shanghai",
        keywords=[Keyword(position=i, text=text) for i, text in enumerate(keywords)],
    )
    db.session().add(subscriber)
    return subscriber


@pytest.fixture
def demo(app):
    session = db.session()
    load_demo(session)
    reader = add_subscriber("reader@example.org", SAMPLE_KEYWORDS)
    bilingual = add_subscriber("bilingual@example.org", SAMPLE_KEYWORDS, language="en+zh")
    session.commit()
    return reader, bilingual


def view_url(app, subscriber: Subscriber, listing_date: date = DEMO_LISTING_DATE) -> str:
    url = subscriber_links(settings(app), subscriber.public_id, listing_date)["view_url"]
    return url.removeprefix(settings(app).BASE_URL)


def counts() -> tuple[int, ...]:
    session = db.session()
    return tuple(
        session.scalar(select(func.count()).select_from(t))
        for t in (Paper, Translation, Delivery, Subscriber)
    )


def test_page_shows_the_full_digest_with_a_script_free_csp(app, client, demo):
    reader, _ = demo
    before = counts()
    response = client.get(view_url(app, reader))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    # All 66 papers in full, the shared one once, no per-keyword limit.
    assert html.count('id="p-') == 66
    assert html.count('id="p-2605.30056"') == 1
    assert "reinforcement learning</a> (65)" in html and "diffusion policy</a> (2)" in html
    assert "1.5–2.2×" in html
    assert "View in browser" not in html
    # The footer carries this subscriber's own working links (tokens carry a timestamp).
    for purpose in ("manage", "unsubscribe"):
        token = re.search(rf'href="http://digest\.test/{purpose}/([^"]+)"', html).group(1)
        assert read_token(app.config["SECRET_KEY"], purpose, token) == reader.public_id
    csp = response.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp and "frame-ancestors 'none'" in csp
    assert "img-src https: data:" in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    # GET changes nothing.
    assert counts() == before


def test_bilingual_page_shows_the_recorded_chinese(app, client, demo):
    _, bilingual = demo
    html = client.get(view_url(app, bilingual)).get_data(as_text=True)
    assert "微观宏观检索:减少大型语言模型中的长形幻觉" in html
    assert "translation not available" not in html


def test_page_shows_what_the_delivery_held(app, client, demo):
    reader, _ = demo
    session = db.session()
    session.add(
        Delivery(
            subscriber_id=reader.id,
            listing_date=DEMO_LISTING_DATE,
            status=DeliveryStatus.SENT,
            message_id="<page-test@digest.test>",
            paper_count=2,
            sections=[["diffusion policy", ["2605.29937", "2605.30056"]]],
            sent_at=datetime(2026, 5, 29, 1, 0, tzinfo=UTC),
        )
    )
    session.commit()
    html = client.get(view_url(app, reader)).get_data(as_text=True)
    assert sorted(re.findall(r'id="p-([0-9.]+)"', html)) == ["2605.29937", "2605.30056"]
    assert "Generated Fri 29 May 2026, 09:00 UTC+8" in html


def test_keywords_changed_since_are_used_when_no_delivery_exists(app, client, demo):
    reader, _ = demo
    reader.keywords.clear()
    db.session().flush()
    reader.keywords.append(Keyword(position=0, text="diffusion policy"))
    db.session().commit()
    html = client.get(view_url(app, reader)).get_data(as_text=True)
    assert html.count('id="p-') == 2


@pytest.mark.parametrize(
    "make_path",
    [
        lambda app, reader: "/digest/not-a-token",
        lambda app, reader: view_url(app, reader).replace("digest/", "digest/x"),
        # Right signature, wrong purpose.
        lambda app, reader: (
            "/digest/" + make_token(app.config["SECRET_KEY"], "manage", reader.public_id)
        ),
        # Right purpose, malformed payloads.
        lambda app, reader: (
            "/digest/" + make_token(app.config["SECRET_KEY"], "digest", reader.public_id)
        ),
        lambda app, reader: (
            "/digest/"
            + make_token(app.config["SECRET_KEY"], "digest", [reader.public_id, "29 May"])
        ),
        lambda app, reader: (
            "/digest/" + make_token(app.config["SECRET_KEY"], "digest", [reader.public_id])
        ),
        lambda app, reader: "/digest/" + make_token(app.config["SECRET_KEY"], "digest", [1, 2]),
        # Unknown subscriber; a date with no papers.
        lambda app, reader: (
            "/digest/" + make_token(app.config["SECRET_KEY"], "digest", ["0" * 32, "2026-05-29"])
        ),
        lambda app, reader: view_url(app, reader, date(2026, 5, 28)),
        lambda app, reader: "/digest/" + "A" * 5000,
    ],
)
def test_invalid_links_get_a_404_page(app, client, demo, make_path):
    reader, _ = demo
    response = client.get(make_path(app, reader))
    assert response.status_code == 404
    assert "not valid" in response.get_data(as_text=True) or "no digest" in response.get_data(
        as_text=True
    )
    # Our own pages keep the strict policy.
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_page_does_not_accept_post(app, client, demo):
    reader, _ = demo
    assert client.post(view_url(app, reader)).status_code in (400, 405)
