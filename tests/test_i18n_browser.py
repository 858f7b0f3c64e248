"""The site in 简体中文 in a real browser (tests/test_browser.py's harness), at a phone
width (390 px) and a desktop width (1280 px): the language switch is a plain link
that works without JavaScript and is remembered, a Chinese browser gets the
Chinese site, a bilingual reader's manage page is in 简体中文 whatever the
browser says, a form error comes back translated, and no page scrolls sideways."""

import pytest
from test_browser import MEASURE, live_site  # noqa: F401 (fixture)

from newsletter import db, replace_settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token

WIDTHS = (390, 1280)


def fits(page, label: str) -> list[str]:
    scroll, client, wide = page.evaluate(MEASURE)
    return [f"{label}: scrollWidth {scroll} > {client}: {wide}"] if scroll > client else []


def new_page(browser, width: int, locale: str, javascript: bool = True):
    context = browser.new_context(
        viewport={"width": width, "height": 844},
        locale=locale,
        java_script_enabled=javascript,
        timezone_id="Asia/Shanghai",
    )
    return context.new_page()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_switch_shows_the_site_in_chinese_and_is_remembered(live_site, browser, width):  # noqa: F811
    app, base = live_site
    # Without JavaScript: the switch is a link, the choice a cookie.
    page = new_page(browser, width, "en-US", javascript=False)
    page.goto(base + "/")
    assert page.get_attribute("html", "lang") == "en"
    switch = page.locator("nav.language")
    assert switch.is_visible()
    assert switch.locator("a[aria-current]").inner_text() == "English"
    problems = fits(page, f"sign-up (English) at {width}")

    switch.locator("a[hreflang='zh-Hans']").click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "zh-Hans"
    assert page.inner_text("h1") == "每个发布日，为您送上相关主题的 arXiv 新论文"
    assert page.locator("nav.language a[aria-current]").inner_text() == "简体中文"
    assert page.inner_text("label[for=email]") == "邮箱地址"
    assert page.title() == "订阅 · arXiv 论文摘要"
    problems += fits(page, f"sign-up (简体中文) at {width}")

    # A form error, and then another page without ?lang=: the cookie keeps 简体中文.
    page.fill("#email", "not an address")
    page.fill("#keywords", 'cat:zz.XX\n"open quote')
    page.locator("button[type=submit]").first.click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "zh-Hans"
    assert "有 2 行需要修改" in page.inner_text("#keywords-error")
    assert "这不是有效的邮箱地址" in page.inner_text("#email-error")
    problems += fits(page, f"sign-up errors (简体中文) at {width}")
    page.goto(base + "/check-email")
    assert page.inner_text("h1") == "请查收邮件"
    page.goto(base + "/no-such-page")
    assert page.inner_text("h1") == "未找到"
    problems += fits(page, f"404 (简体中文) at {width}")

    # And back to English from the switch.
    page.locator("nav.language a[hreflang='en']").click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("h1") == "New arXiv papers on your topics, every announcement day"
    assert problems == []


@pytest.mark.parametrize("width", WIDTHS)
def test_a_chinese_browser_and_a_bilingual_reader_get_chinese(live_site, browser, width):  # noqa: F811
    app, base = live_site
    replace_settings(app, TRANSLATION_BACKEND="recorded")
    page = new_page(browser, width, "zh-CN")
    page.goto(base + "/")
    assert page.get_attribute("html", "lang") == "zh-Hans"
    # The form offers the bilingual digest first to a Chinese reader.
    assert page.locator("#language option:checked").inner_text() == "英文 + 简体中文"
    problems = fits(page, f"sign-up (Accept-Language zh-CN) at {width}")

    with app.app_context():
        reader = Subscriber(
            email="li@example.org",
            email_key="li@example.org",
            status=SubscriberStatus.CONFIRMED,
            language="en+zh",
        )
        reader.keywords.append(Keyword(position=0, text="diffusion policy"))
        db.session().add(reader)
        db.session().commit()
        token = make_token(app.config["SECRET_KEY"], "manage", reader.public_id)
    english = new_page(browser, width, "en-US")
    english.goto(f"{base}/manage/{token}")
    assert english.get_attribute("html", "lang") == "zh-Hans"
    assert english.inner_text("h1") == "您的订阅"
    assert english.inner_text("strong.status") == "已确认"
    problems += fits(english, f"manage (bilingual reader) at {width}")
    assert problems == []
