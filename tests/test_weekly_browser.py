"""Weekly digests in a real browser (tests/test_browser.py's harness), at a phone
width (390 px) and a desktop width (1280 px): choosing weekly on the manage page
(stored, shown again, a tampered weekday refused, the form inside the width),
and a weekly digest's web page, its range of listing dates in its header."""

from datetime import date

import pytest
from sqlalchemy import select
from test_browser import WIDTHS, browser_page, live_site, overflows  # noqa: F401 (fixtures)
from test_weekly import at, cs, listing_dates, paper_id, publish  # noqa: F401 (fixture)

from newsletter import db
from newsletter.config import settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token, subscriber_links
from worker.delivery.dispatch import dispatch_digests


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


@pytest.mark.parametrize("width", WIDTHS)
def test_a_weekly_digests_page_names_its_dates_and_fits(cs, live_site, browser_page, width):  # noqa: F811
    app, base = live_site
    page, problems = browser_page
    add_confirmed(app)
    days = listing_dates(date(2026, 11, 17), date(2026, 11, 23))
    with app.app_context():
        subscriber = db.session().scalars(select(Subscriber)).one()
        subscriber.confirmed_at = at(date(2026, 11, 16), 0)
        subscriber.choose_frequency("weekly", 0)  # Monday, from 07:00 Asia/Shanghai
        db.session().commit()
        for day in days:
            publish(day)
            dispatch_digests(day, at(day, 9))
        view = subscriber_links(settings(), subscriber.public_id, days[-1])["view_url"]
    page.set_viewport_size({"width": width, "height": 844})
    response = page.goto(view)
    assert response is not None and response.status == 200
    assert "week of Tue 17 Nov – Mon 23 Nov 2026" in page.inner_text("body")
    for day in days:
        assert page.locator(f"a[href='https://arxiv.org/abs/{paper_id(day)}']").count() >= 1
    assert overflows(page, "a weekly digest's page") == []
    assert problems == []
