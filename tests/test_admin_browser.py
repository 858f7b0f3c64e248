"""The operator's status page (/admin/) in a real browser (tests/test_browser.py's
Chromium harness): refused without the password; with it, the five plots are
shown at 1280 and 390 px, as wide as the column, without a sideways scroll and
without a CSP violation (the charts use no inline style)."""

import os

import pytest
from playwright.sync_api import Error as PlaywrightError
from test_admin import PASSWORD, add_day, make_readers
from test_browser import WIDTHS, browser_page, live_site, overflows, watched  # noqa: F401 (fixtures)

from newsletter import db, replace_settings
from newsletter.admin import recent_listing_dates
from newsletter.db import utcnow
from worker import calendar

# Set to a folder to keep a full-page screenshot at each width (for a look by eye).
SCREENSHOTS = os.environ.get("ADMIN_SCREENSHOTS")


def operator_tab(page, password: str, problems: list[str]):
    """A tab of the same browser that answers the site's basic-auth challenge with
    `password`; its script errors and CSP violations go to `problems`."""
    context = page.context.browser.new_context(
        http_credentials={"username": "operator", "password": password}
    )
    return watched(context.new_page(), problems)


def test_the_status_page_needs_the_password(live_site, browser_page):  # noqa: F811 (fixtures)
    app, base = live_site
    page, problems = browser_page
    replace_settings(app, ADMIN_PASSWORD=PASSWORD)
    # No password: the browser gets the challenge and, with nothing to answer, gives up.
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        page.goto(base + "/admin/")
    tab = operator_tab(page, "not it", problems)
    response = tab.goto(base + "/admin/")
    assert response.status == 401
    assert tab.locator("svg.chart").count() == 0


def test_the_status_page_shows_its_plots_at_desktop_and_phone_widths(live_site, browser_page):  # noqa: F811 (fixtures)
    app, base = live_site
    page, problems = browser_page
    replace_settings(app, ADMIN_PASSWORD=PASSWORD)
    with app.app_context():
        session = db.session()
        dates = recent_listing_dates(calendar.due_listing_date(utcnow()), 30)
        readers = make_readers(session, dates)
        for day in dates[-5:]:
            add_day(session, day, readers)
        session.commit()
    page = operator_tab(page, PASSWORD, problems)
    assert page.goto(base + "/admin/").status == 200
    assert "Status" in page.text_content("h1")
    charts = page.locator("svg.chart")
    assert charts.count() == 5
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        column = page.locator("main").bounding_box()["width"]
        for n in range(5):
            chart = charts.nth(n)
            assert chart.is_visible()
            box = chart.bounding_box()
            # As wide as the column (less its padding), and tall enough to read.
            assert box["width"] > column * 0.8 and box["height"] > 0.2 * box["width"]
            assert chart.locator("g.bar").count() == 30
        # The papers of the last days are drawn: coloured rectangles with a real height.
        drawn = charts.nth(0).locator("rect[fill='#0072b2']")
        assert drawn.count() == 5 and drawn.first.bounding_box()["height"] > 5
    assert overflows(page, "/admin/") == []
    if SCREENSHOTS:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 844})
            page.screenshot(path=f"{SCREENSHOTS}/admin-{width}.png", full_page=True)
    assert problems == []
