"""A real browser (Debian's Chromium driven by Playwright) walks the site as a
new user would: sign up, open the confirmation email in the dev outbox,
confirm, change keywords, unsubscribe. Then every page (errors included) and
every email (confirmation, already-subscribed, digest in English and
bilingual) is shown at 1280 and 390 px and must not scroll sideways."""

import re
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import Outbox, empty_tables, free_port
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from werkzeug.serving import make_server

from newsletter import build_app, create_app, db, replace_settings
from newsletter.config import settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token, read_token
from worker.delivery.dispatch import dispatch_digests
from worker.demo.load import load_demo


@pytest.fixture
def live_site(config, database_url):
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
def browser_page(browser):
    """A tab of its own context in the worker's Chromium (conftest), with its problems."""
    context = browser.new_context(
        timezone_id="Asia/Shanghai", viewport={"width": 390, "height": 844}
    )
    problems: list[str] = []
    return watched(context.new_page(), problems), problems


def watched(page, problems: list[str]):
    """`page`, its script errors and CSP violations going to `problems`.

    HTTP statuses are checked by the tests themselves.
    """
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and problems.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page


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


# --- every page and every email fits 1280 px and 390 px (no horizontal scroll) ---

WIDTHS = (1280, 390)
# scrollWidth > clientWidth is a horizontal scroll bar; the widest elements say why.
MEASURE = """() => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 0.5
      || (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1
          && getComputedStyle(el).overflowX === 'visible'))
    .slice(0, 5)
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}` +
      `${el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : ''}` +
      ` right=${Math.round(el.getBoundingClientRect().right)} scroll=${el.scrollWidth}`);
  return [root.scrollWidth, root.clientWidth, wide];
}"""


def overflows(page, label: str) -> list[str]:
    """One line per width at which the shown page scrolls sideways."""
    found = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        scroll, client, wide = page.evaluate(MEASURE)
        if scroll > client:
            found.append(f"{label} at {width} px: scrollWidth {scroll} > {client}: {wide}")
    return found


def show_email(page, message) -> None:
    """The email's HTML part as a mail client shows it: a document of its own.

    `page` must be a tab of its own: a tab that showed the site keeps the
    site's Content-Security-Policy, which blocks the email's inline styles.
    """
    page.set_content(message.get_body(("html",)).get_content(), wait_until="load")


def outbox_messages(app, subject_part: str, to: str | None = None) -> list:
    messages = Outbox(Path(settings(app).OUTBOX_DIR)).messages()
    return [m for m in messages if subject_part in m["Subject"] and (to is None or m["To"] == to)]


def link_in(message, path_part: str) -> str:
    text = message.get_body(("plain",)).get_content()
    return next(url for url in re.findall(r"https?://\S+", text) if path_part in url)


class YearOldSigner(TimestampSigner):
    """Signs as if a year ago: an expired confirmation link."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 365 * 24 * 3600


def test_every_page_and_email_fits_at_1280_and_390_px(live_site, browser_page, database_url):
    app, base = live_site
    page, problems = browser_page
    mail = page.context.new_page()  # emails open here, away from the site's CSP
    mail.on("console", lambda message: message.type == "error" and problems.append(message.text))
    found: list[str] = []
    seen: list[str] = []

    def check(label: str, status: int | None = None, response=None, tab=page) -> None:
        if status is not None:
            assert response is not None and response.status == status, label
        seen.append(label)
        found.extend(overflows(tab, label))

    check("sign-up", 200, page.goto(base + "/"))
    # Long unbroken input comes back in the fields and in the errors.
    page.fill("#email", "x" * 60 + "@" + "y" * 60)
    page.fill(
        "#keywords",
        "\n".join(['broken "quote', "au:", "k" * 120, "-cat:" + "z" * 90, "a" * 99 + " -au:"]),
    )
    with page.expect_navigation() as sent:
        page.click("button[type=submit]")
    assert page.locator("#keywords-error li").count() == 5
    check("sign-up with errors", 400, sent.value)

    page.fill("#email", "grace@example.org")
    page.fill("#keywords", "reinforcement learning\ndiffusion policy")
    with page.expect_navigation() as sent:
        page.click("button[type=submit]")
    check("check-email", 200, sent.value)

    [confirmation] = outbox_messages(app, "Confirm")
    show_email(mail, confirmation)
    check("confirmation email", tab=mail)

    confirm_link = link_in(confirmation, "/confirm/")
    public_id = read_token(app.config["SECRET_KEY"], "confirm", confirm_link.rsplit("/", 1)[1])
    expired = URLSafeTimedSerializer(
        app.config["SECRET_KEY"], salt="newsletter.confirm", signer=YearOldSigner
    ).dumps(public_id)
    check("confirm link expired", 410, page.goto(f"{base}/confirm/{expired}"))
    check("confirm", 200, page.goto(confirm_link))
    with page.expect_navigation() as sent:
        page.click("button:has-text('Confirm subscription')")
    check("confirmed (manage)", 200, sent.value)

    page.fill("#keywords", "au:\n" + "q" * 130 + "\n" + '"' + "w" * 80)
    page.fill("#timezone", "Nowhere/" + "n" * 50)
    with page.expect_navigation() as sent:
        page.click("button:has-text('Save')")
    check("manage with errors", 400, sent.value)

    # A repeated sign-up: the already-subscribed email.
    page.goto(base + "/")
    page.fill("#email", "grace@example.org")
    page.fill("#keywords", "diffusion policy")
    with page.expect_navigation():
        page.click("button[type=submit]")
    [again] = outbox_messages(app, "Your arXiv digest subscription", "grace@example.org")
    show_email(mail, again)
    check("already-subscribed email", tab=mail)

    # Digests of the demo day, English and bilingual, and their web pages.
    with app.app_context():
        session = db.session()
        listing_date = load_demo(session)
        for email, language in (("en@example.org", "en"), ("zh@example.org", "en+zh")):
            subscriber = Subscriber(
                email=email, email_key=email, status=SubscriberStatus.CONFIRMED, language=language
            )
            subscriber.keywords = [
                Keyword(position=0, text="reinforcement learning"),
                Keyword(position=1, text="diffusion policy"),
            ]
            session.add(subscriber)
        session.commit()
        assert dispatch_digests(listing_date).queued == 3  # grace too
    # The bilingual digest's chrome (its subject too) is in 简体中文.
    for email, label, subject in (
        ("en@example.org", "English", "arXiv digest"),
        ("zh@example.org", "bilingual", "arXiv 论文摘要"),
    ):
        [digest] = outbox_messages(app, subject, email)
        show_email(mail, digest)
        check(f"digest email ({label})", tab=mail)
        check(f"digest page ({label})", 200, page.goto(link_in(digest, "/digest/")))
    check("unsubscribe", 200, page.goto(link_in(digest, "/unsubscribe/")))
    with page.expect_navigation() as sent:
        page.click("button.danger")  # 退订: the bilingual reader's page is in 简体中文
    check("unsubscribed", 200, sent.value)

    check("404", 404, page.goto(base + "/no-such-page"))
    page.goto(base + "/")
    with page.expect_navigation() as sent:
        # A body past the 64 KiB cap, as a form post.
        page.evaluate(
            """() => { const area = document.querySelector('#keywords');
                area.removeAttribute('maxlength'); area.value = 'x'.repeat(70000);
                document.querySelector('form').submit(); }"""
        )
    check("413", 413, sent.value)
    replace_settings(app, SIGNUP_LIMIT_PER_IP=0)
    page.goto(base + "/")
    page.fill("#email", "someone@example.org")
    page.fill("#keywords", "diffusion policy")
    with page.expect_navigation() as sent:
        page.click("button[type=submit]")
    check("429", 429, sent.value)

    # 503: a site whose database does not answer (build_app skips the start-up check).
    port = free_port()
    broken = build_app(
        {
            **app.config,
            **asdict(settings(app)),
            "DATABASE_URL": "sqlite:////nonexistent-directory/newsletter.db",
        }
    )
    server = make_server("127.0.0.1", port, broken, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        token = make_token(app.config["SECRET_KEY"], "manage", "no-such-subscriber")
        check("503", 503, page.goto(f"http://127.0.0.1:{port}/manage/{token}"))
    finally:
        server.shutdown()

    assert len(seen) == 19
    assert found == [], "\n".join(found)
    assert problems == []


def test_the_overflow_check_names_what_is_too_wide(browser_page):
    page, _problems = browser_page
    page.set_content('<p>fits</p><pre id="code">' + "x" * 300 + "</pre>")
    [at_1280, at_390] = overflows(page, "wide")
    assert at_1280.startswith("wide at 1280 px: scrollWidth") and "pre#code" in at_1280
    assert at_390.startswith("wide at 390 px") and "pre#code" in at_390
    page.set_content("<p>" + "word " * 300 + "</p>")
    assert overflows(page, "prose") == []
