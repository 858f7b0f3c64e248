"""The keyword preview in a real browser (tests/test_browser.py's harness), each test
at a phone width (390 px) and a desktop width (1280 px): typing shows each line's
counts without a page load; without JavaScript the Preview button shows them; the
manage page previews the stored lines on opening; and the pages with a preview
fit 1280 and 390 px."""

import re
from datetime import date

import pytest
from sqlalchemy import func, select
from test_browser import WIDTHS, browser_page, live_site, overflows, watched  # noqa: F401 (fixtures)
from test_preview import store_full_day

from newsletter import db
from newsletter.config import settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token
from worker.digest.core import DayDigest, Reader

DAY = date(2024, 11, 28)
LONG = "k" * 100  # a valid line that matches nothing, and must wrap at 390 px
EXPECTED: dict[tuple[tuple[str, ...], bool], dict[str, list[str]]] = {}  # sections_of's


def seed_day(app) -> dict[str, list[str]]:
    """The real full day, stored (test_preview.store_full_day); the digest's sections for
    the test's lines."""
    store_full_day(app)
    return sections_of(app, ("black hole", "reinforcement learning", LONG), False)


def sections_of(app, lines: tuple[str, ...], replacements: bool) -> dict[str, list[str]]:
    """The digest's sections of the stored day for `lines`, as dispatch loads the day.

    Computed on the worker's first ask (0.6 s): every test stores equal rows.
    """
    if (lines, replacements) not in EXPECTED:
        with app.app_context():
            digest = DayDigest.load(db.session(), settings(app), DAY)
            reader = Reader(lines, "en", "UTC", replacements)
            EXPECTED[lines, replacements] = dict(digest.sections({0: reader})[0])
    return EXPECTED[lines, replacements]


def count_in(page, line: str) -> str:
    block = page.locator(".preview-line", has=page.locator(f"code:text-is('{line}')"))
    return re.search(r"Thu 28 Nov: (\d+)", block.inner_text()).group(1)


def within(page, selector: str, width: int) -> bool:
    """Whether the first element `selector` finds is shown inside the page's `width`."""
    page.set_viewport_size({"width": width, "height": 844})  # overflows() leaves it at 390
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_typing_shows_counts_without_a_page_load(live_site, browser_page, width):  # noqa: F811
    app, base = live_site
    page, problems = browser_page
    expected = seed_day(app)
    page.set_viewport_size({"width": width, "height": 844})

    page.goto(base + "/")
    page.evaluate("window.stayed = 'yes'")  # gone if the page loads again
    assert page.locator("#preview .preview-line").count() == 0
    page.locator("#keywords").press_sequentially("black hole", delay=20)
    # The first preview builds the day's index (~1 s idle): allow a loaded machine more.
    page.wait_for_selector("#preview .preview-line", timeout=90_000)
    assert count_in(page, "black hole") == str(len(expected["black hole"]))
    first = expected["black hole"][0]
    assert page.locator(f"#preview a[href='https://arxiv.org/abs/{first}']").count() == 1

    page.locator("#keywords").press("End")
    page.locator("#keywords").press_sequentially(f"\nreinforcement learning\n{LONG}", delay=5)
    page.locator("#preview .preview-line").nth(2).wait_for()
    assert count_in(page, "reinforcement learning") == str(len(expected["reinforcement learning"]))
    assert count_in(page, LONG) == "0"
    # A bad line: the form's own message, the good lines still previewed.
    page.locator("#keywords").press_sequentially('\nbroken "quote', delay=5)
    page.wait_for_selector("#preview .preview-errors")
    assert "A quote is not closed" in page.inner_text("#preview .preview-errors")
    assert page.locator("#preview .preview-line").count() == 3
    assert page.evaluate("window.stayed") == "yes"
    assert within(page, f"#preview a[href='https://arxiv.org/abs/{first}']", width)
    assert overflows(page, "sign-up with a preview") == []
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Subscriber)) == 0

    # The manage page previews the stored lines as it opens.
    with app.app_context():
        subscriber = Subscriber(
            email="ada@example.org", email_key="ada@example.org", status=SubscriberStatus.CONFIRMED
        )
        subscriber.keywords.append(Keyword(position=0, text="black hole"))
        db.session().add(subscriber)
        db.session().commit()
        token = make_token(app.config["SECRET_KEY"], "manage", subscriber.public_id)
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(f"{base}/manage/{token}")
    page.wait_for_selector("#preview .preview-line")
    assert count_in(page, "black hole") == str(len(expected["black hole"]))
    assert within(page, "#preview .preview-line", width)
    assert overflows(page, "manage with a preview") == []
    assert problems == []


@pytest.mark.parametrize("width", WIDTHS)
def test_preview_button_without_javascript(live_site, browser, width):  # noqa: F811
    app, base = live_site
    seed_day(app)
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": width, "height": 844}
    )
    problems: list[str] = []  # CSP violations are reported without JavaScript too
    plain = watched(context.new_page(), problems)
    plain.goto(base + "/")
    plain.fill("#email", "grace@example.org")
    plain.fill("#keywords", f"black hole\n{LONG}")
    plain.check("#include_replacements")
    with plain.expect_navigation() as sent:
        plain.click("button:has-text('Preview my keywords')")
    assert sent.value.status == 200
    with_replacements = sections_of(app, ("black hole",), True)
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Subscriber)) == 0
    assert count_in(plain, "black hole") == str(len(with_replacements["black hole"]))
    assert count_in(plain, LONG) == "0"
    assert within(plain, "#preview .preview-line", width)
    # The form keeps what was typed.
    assert plain.input_value("#email") == "grace@example.org"
    assert plain.input_value("#keywords") == f"black hole\n{LONG}"
    assert plain.is_checked("#include_replacements")
    assert overflows(plain, "sign-up preview without JavaScript") == []
    context.close()
    assert problems == []
