"""The relevance order on the digest web page in a real browser (tests/test_browser.py's
harness), at a phone width (390 px) and a desktop width (1280 px): the first section
lists its papers top to bottom in the delivery row's order (title matches first), the
footer explains the order and links the feed, all inside the width."""

import pytest
from sqlalchemy import select
from test_browser import WIDTHS, browser_page, live_site, overflows  # noqa: F401 (fixtures)

from newsletter import db
from newsletter.config import settings
from newsletter.models import Delivery, Keyword, Paper, Subscriber, SubscriberStatus
from newsletter.tokens import subscriber_links
from worker.delivery.dispatch import dispatch_digests
from worker.demo.load import load_demo

LINES = ["learning", "reinforcement learning", "diffusion policy"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_digest_page_shows_each_section_in_relevance_order(
    live_site,  # noqa: F811
    browser_page,  # noqa: F811
    width,
):
    app, _base = live_site
    page, problems = browser_page
    with app.app_context():
        session = db.session()
        listing_date = load_demo(session)
        subscriber = Subscriber(
            email="order@example.org",
            email_key="order@example.org",
            status=SubscriberStatus.CONFIRMED,
            keywords=[Keyword(position=n, text=text) for n, text in enumerate(LINES)],
        )
        session.add(subscriber)
        session.commit()
        dispatch_digests(listing_date)
        row = session.scalar(select(Delivery).where(Delivery.subscriber_id == subscriber.id))
        sections = row.sections
        titles = {
            row.arxiv_id: row.title for row in session.execute(select(Paper.arxiv_id, Paper.title))
        }
        links = subscriber_links(settings(app), subscriber.public_id, listing_date)

    page.set_viewport_size({"width": width, "height": 844})
    page.goto(links["view_url"])
    # The first section's entries, top to bottom as shown.
    keyword, ids = sections[0]
    assert keyword == "learning" and len(ids) > 25
    entries = page.locator("h2#k-1 ~ div[id^='p-']")
    shown = [anchor.removeprefix("p-") for anchor in entries.evaluate_all("e => e.map(d => d.id)")]
    assert shown[: len(ids)] == ids
    tops = [box["y"] for box in (entries.nth(n).bounding_box() for n in range(3))]
    assert tops == sorted(tops)
    # Title matches lead: the first paper's title has the line, the last one's not.
    assert "learning" in titles[ids[0]].lower() and "learning" not in titles[ids[-1]].lower()
    assert page.locator(f"[id='p-{ids[0]}'] mark").first.is_visible()
    footer = page.get_by_text("In each section: papers whose title matches the keyword first")
    assert footer.is_visible()
    box = footer.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    feed = page.locator("a", has_text="Atom feed")
    assert feed.get_attribute("href").startswith(links["feed_url"].rsplit("/", 1)[0])
    assert overflows(page, "digest page in relevance order") == []
    assert problems == []
