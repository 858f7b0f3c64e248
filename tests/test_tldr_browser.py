"""TL;DRs in a real browser (tests/test_browser.py's harness), at a phone width (390 px)
and a desktop width (1280 px): a subscriber ticks "TL;DR" on the manage page, the
translation job writes the TL;DRs on the local model server (tests/test_tldr.py's),
and the digest web page shows each one under its paper's title, inside the width."""

import pytest
from test_browser import WIDTHS, browser_page, live_site, overflows  # noqa: F401 (fixtures)
from test_tldr import DEMO_DATE, TEX_PAPER, chat_server, tick  # noqa: F401 (fixture)
from test_translation import settings as openai_values
from test_translation import store_sample_day

from newsletter import db
from newsletter.config import settings
from newsletter.models import Subscriber
from newsletter.tokens import subscriber_links
from worker.translation.job import translate_day


@pytest.fixture(autouse=True)
def model_server_in_config(config, chat_server):  # noqa: F811
    # Autouse: before live_site makes its app from `config`.
    config.update(openai_values(chat_server.url))


def inside(page, selector: str, width: int) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_tick_tldr_on_the_manage_page_and_see_it_on_the_digest_page(
    live_site,  # noqa: F811
    browser_page,  # noqa: F811
    width,
):
    app, _base = live_site
    page, problems = browser_page
    page.set_viewport_size({"width": width, "height": 844})
    with app.app_context():
        session = db.session()
        store_sample_day(session)
        subscriber = tick(session, 1, ["minimax"], tldr=False)
        session.commit()
        subscriber_id = subscriber.id
        links = subscriber_links(settings(app), subscriber.public_id, DEMO_DATE)

    page.goto(links["manage_url"])
    assert not page.is_checked("#tldr")
    assert inside(page, "label[for=tldr]", width)
    page.check("#tldr")
    with page.expect_navigation():
        page.click("button:text-is('Save')")
    assert page.is_checked("#tldr")
    assert overflows(page, "manage with TL;DR ticked") == []
    with app.app_context():
        assert db.session().get(Subscriber, subscriber_id).tldr is True
        report = translate_day(db.session(), settings(app), DEMO_DATE)
        assert report.tldrs.written == 1

    page.set_viewport_size({"width": width, "height": 844})
    page.goto(links["view_url"])
    entry = page.locator(f"[id='p-{TEX_PAPER}']")
    tldr = entry.locator("div", has_text="TL;DR").last
    assert tldr.inner_text().startswith("TL;DR Proposes theoretical foundations")
    assert "1.5–2.2×" in tldr.inner_text()  # the paper's TeX, readable
    title_box = entry.locator("a").first.bounding_box()
    tldr_box = tldr.bounding_box()
    assert title_box["y"] < tldr_box["y"]  # under the title
    assert tldr_box["x"] >= 0 and tldr_box["x"] + tldr_box["width"] <= width
    assert overflows(page, "digest page with TL;DRs") == []
    assert problems == []
