"""Choosing a weekly digest on the manage page in a real browser (tests/test_browser.py's
harness), at a phone width (390 px) and a desktop width (1280 px): the choice is
stored, shown again, and the form fits the width without scrolling sideways."""

import pytest
from sqlalchemy import select
from test_browser import WIDTHS, browser_page, live_site, overflows  # noqa: F401 (fixtures)

from newsletter import db
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token


def add_confirmed(app) -> str:
    """A confirmed daily subscriber; their manage page's path."""
    with app.app_context():
        session = db.session()
        subscriber = Subscriber(
            email="wes@example.org",
            email_key="wes@example.org",
            status=SubscriberStatus.CONFIRMED,
            timezone="Asia/Shanghai",
            delivery_hour=7,
        )
        subscriber.keywords = [Keyword(position=0, text="diffusion policy")]
        session.add(subscriber)
        session.commit()
        return f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"


def stored_choice(app) -> tuple:
    with app.app_context():
        subscriber = db.session().scalars(select(Subscriber)).one()
        return subscriber.frequency, subscriber.weekday, subscriber.delivery_hour


def inside(page, selector: str, width: int) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_choosing_weekly_on_the_manage_page(live_site, browser_page, width):  # noqa: F811
    app, base = live_site
    page, problems = browser_page
    manage = add_confirmed(app)
    page.set_viewport_size({"width": width, "height": 844})

    page.goto(base + manage)
    assert page.locator("#frequency").input_value() == "daily"
    for field in ("#frequency", "#weekday"):
        assert page.locator(field).is_visible() and inside(page, field, width)
    page.select_option("#frequency", "weekly")
    page.select_option("#weekday", label="Friday")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**saved=1")

    assert "Your settings are saved." in page.inner_text("main")
    assert page.locator("#frequency").input_value() == "weekly"
    assert page.locator("#weekday").input_value() == "4"
    assert stored_choice(app) == ("weekly", 4, 7)  # the delivery hour is kept

    # Back to daily; then a tampered weekday is refused with the field's message.
    page.select_option("#frequency", "daily")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**saved=1")
    assert stored_choice(app) == ("daily", 4, 7)
    page.evaluate("document.querySelector('#weekday option').value = '9'")
    page.select_option("#frequency", "weekly")
    page.select_option("#weekday", index=0)
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_selector("#weekday-error")
    assert page.locator("#weekday").get_attribute("aria-invalid") == "true"
    assert inside(page, "#weekday-error", width)
    assert stored_choice(app) == ("daily", 4, 7)
    assert overflows(page, "manage page with a weekday error") == []
    assert problems == []
