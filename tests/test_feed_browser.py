"""The personal feed link on the manage page in a real browser (tests/test_browser.py's
harness), at a phone width (390 px) and a desktop width (1280 px): the link is shown
whole and wraps inside the page, following it answers the reader's Atom feed of the
digest's own matches, it stays while paused and goes once unsubscribed."""

import feedparser
import pytest
from test_browser import browser_page, live_site  # noqa: F401 (fixtures)
from test_my_data_browser import fits

from newsletter import db
from newsletter.config import settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token, read_token
from worker.demo.load import load_demo
from worker.digest.core import DayDigest, Reader

LINES = ("reinforcement learning", "diffusion policy")


def seed(app) -> tuple[str, set[str]]:
    """The demo day and a confirmed reader of LINES: their manage token and the digest's papers."""
    with app.app_context():
        session = db.session()
        listing_date = load_demo(session)
        reader = Subscriber(
            email="ada@example.org", email_key="ada@example.org", status=SubscriberStatus.CONFIRMED
        )
        reader.keywords = [Keyword(position=n, text=line) for n, line in enumerate(LINES)]
        session.add(reader)
        session.commit()
        digest = DayDigest.load(session, settings(app), listing_date)
        sections = digest.sections({0: Reader(LINES, "en", "UTC", False)})[0]
        papers = {arxiv_id for _line, ids in sections for arxiv_id in ids}
        return make_token(app.config["SECRET_KEY"], "manage", reader.public_id), papers


def feed_of(app, url: str) -> str | None:
    """The public_id a feed URL's token names."""
    return read_token(app.config["SECRET_KEY"], "feed", url.rsplit("/", 1)[1])


@pytest.mark.parametrize("width", [390, 1280])
def test_the_feed_link_at_phone_and_desktop_width(live_site, browser_page, width):  # noqa: F811
    app, base = live_site
    page, problems = browser_page
    token, papers = seed(app)
    assert papers  # the demo day matches both lines
    found: list[str] = []
    page.set_viewport_size({"width": width, "height": 844})

    page.goto(f"{base}/manage/{token}")
    link = page.locator("section.feed a.feed-url")
    assert link.is_visible()
    href = link.get_attribute("href")
    assert href.startswith(f"{base}/feed/") and link.inner_text() == href
    box = link.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width  # the long URL wraps
    found += fits(page, width, "manage with the feed link")

    # Following it gives the reader's Atom feed: the papers the digest gave them.
    with page.expect_response(href) as answer:
        link.click()
    response = answer.value
    assert response.status == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.body())
    assert not parsed.bozo, parsed.bozo_exception
    assert {entry.link.removeprefix("https://arxiv.org/abs/") for entry in parsed.entries} == papers
    assert {tag.term for entry in parsed.entries for tag in entry.tags} == set(LINES)

    # Paused: still there. Unsubscribed: gone from the page, and the URL answers 404.
    page.goto(f"{base}/manage/{token}")
    with page.expect_navigation():
        page.click("button:has-text('Pause the digest')")
    # A fresh token (they are timestamped) for the same reader's feed.
    again = page.locator("section.feed a.feed-url").get_attribute("href")
    assert feed_of(app, again) == feed_of(app, href) is not None
    found += fits(page, width, "paused, with the feed link")
    with page.expect_navigation():
        page.click("button:has-text('Unsubscribe')")
    page.goto(f"{base}/manage/{token}")
    assert page.locator("section.feed").count() == 0
    assert page.request.get(href).status == 404

    assert found == [], "\n".join(found)
    assert problems == []
