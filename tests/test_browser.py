"""A real browser (Debian's Chromium driven by Playwright) walks the site as a
new user would: sign up, open the confirmation email in the dev outbox,
confirm, change keywords, unsubscribe."""

import threading
from pathlib import Path

import pytest
from conftest import empty_tables, free_port
from playwright.sync_api import sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from newsletter import create_app, db
from newsletter.models import Subscriber, SubscriberStatus

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def live_site(config, database_url):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium)")
    empty_tables(database_url)
    port = free_port()
    app = create_app({**config, "DEV": True, "BASE_URL": f"http://127.0.0.1:{port}"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{port}"
    server.shutdown()
    app.extensions["db_engine"].dispose()


@pytest.fixture
def browser_page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        context = browser.new_context(
            timezone_id="Asia/Shanghai", viewport={"width": 390, "height": 844}
        )
        page = context.new_page()
        problems: list[str] = []
        # Script errors and CSP violations; HTTP statuses are checked by the test itself.
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and not message.text.startswith("Failed to load resource")
                and problems.append(message.text)
            ),
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        yield page, problems
        browser.close()


def test_a_new_user_subscribes_confirms_edits_and_leaves(live_site, browser_page):
    app, base = live_site
    page, problems = browser_page

    page.goto(base + "/")
    # The script pre-fills the browser's timezone; the field stays editable.
    assert page.input_value("#timezone") == "Asia/Shanghai"
    page.fill("#email", "grace@example.org")
    page.fill("#keywords", "reinforcement learning\ndiffusion-policy")
    page.click("button[type=submit]")
    page.wait_for_url("**/check-email")
    assert "Check your email" in page.text_content("h1")

    page.goto(base + "/dev/outbox/")
    page.click("text=Confirm your arXiv digest subscription")
    page.click("ul.links a[href*='/confirm/']")
    assert "Confirm your subscription" in page.text_content("h1")
    with app.app_context():
        assert db.session().scalars(select(Subscriber)).one().status is SubscriberStatus.UNCONFIRMED
    page.click("button:has-text('Confirm subscription')")
    page.wait_for_url("**/manage/**")
    assert "confirmed" in page.text_content(".notice")

    page.fill("#keywords", "robot learning\n  robot   LEARNING\ncat:cs.RO grasping")
    page.select_option("#delivery_hour", "8")
    page.click("button:has-text('Save')")
    page.wait_for_url("**saved=1")
    assert page.input_value("#keywords") == "robot learning\ncat:cs.RO grasping"
    with app.app_context():
        subscriber = db.session().scalars(select(Subscriber)).one()
        assert subscriber.status is SubscriberStatus.CONFIRMED
        assert subscriber.keyword_lines == ["robot learning", "cat:cs.RO grasping"]
        assert (subscriber.timezone, subscriber.delivery_hour) == ("Asia/Shanghai", 8)

    page.fill("#keywords", 'broken "quote')
    page.click("button:has-text('Save')")
    assert page.locator("#keywords-error").is_visible()

    page.click("button:has-text('Unsubscribe')")
    assert "You are unsubscribed" in page.text_content("h1")
    with app.app_context():
        assert (
            db.session().scalars(select(Subscriber)).one().status is SubscriberStatus.UNSUBSCRIBED
        )
    assert problems == []
