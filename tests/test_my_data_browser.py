"""Download my data and erase me in a real browser (tests/test_browser.py's harness),
at a phone width (390 px) and a desktop width (1280 px): the manage page's button
downloads the JSON file, the erase page refuses a mistyped address and erases the
right one, the old links then answer a clear page, and the last email is shown as
a mail client would; no page or email scrolls sideways at that width."""

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_browser import (  # noqa: F401 (fixtures)
    MEASURE,
    browser_page,
    live_site,
    outbox_messages,
    show_email,
)

from newsletter import db
from newsletter.models import Delivery, DeliveryStatus, Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token

LONG = "Ada.Lovelace.Analytical.Engine." + "n" * 40 + "@example.org"


def fits(page, width: int, label: str) -> list[str]:
    """One line if the shown page scrolls sideways at `width` (the viewport is left at it)."""
    page.set_viewport_size({"width": width, "height": 844})
    scroll, client, wide = page.evaluate(MEASURE)
    return (
        [f"{label} at {width} px: scrollWidth {scroll} > {client}: {wide}"]
        if scroll > client
        else []
    )


def add_reader(app) -> str:
    """A confirmed reader with a long address, two lines and one sent digest; their manage token."""
    with app.app_context():
        session = db.session()
        reader = Subscriber(
            email=LONG, email_key=LONG.casefold(), status=SubscriberStatus.CONFIRMED
        )
        reader.keywords = [
            Keyword(position=0, text="reinforcement learning"),
            Keyword(position=1, text="diffusion policy"),
        ]
        session.add(reader)
        session.flush()
        session.add(
            Delivery(
                subscriber_id=reader.id,
                listing_date=date(2026, 5, 29),
                status=DeliveryStatus.SENT,
                message_id="<one@digest.test>",
                paper_count=4,
                sent_at=db.utcnow(),
            )
        )
        session.commit()
        return make_token(app.config["SECRET_KEY"], "manage", reader.public_id)


@pytest.mark.parametrize("width", [390, 1280])
def test_download_then_erase_at_phone_and_desktop_width(live_site, browser_page, width):  # noqa: F811
    app, base = live_site
    page, problems = browser_page
    token = add_reader(app)
    found: list[str] = []
    page.set_viewport_size({"width": width, "height": 844})

    page.goto(f"{base}/manage/{token}")
    found += fits(page, width, "manage")
    with page.expect_download() as download_info:
        page.click("button:has-text('Download my data')")
    download = download_info.value
    assert download.suggested_filename == "arxiv-digest-my-data.json"
    data = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert data["subscriber"]["email"] == LONG
    assert data["keywords"] == ["reinforcement learning", "diffusion policy"]
    assert [(d["listing_date"], d["status"]) for d in data["deliveries"]] == [
        ("2026-05-29", "sent")
    ]
    assert page.url == f"{base}/manage/{token}"  # the download left the page as it was

    page.click("a.erase")
    page.wait_for_url(f"**/erase/{token}")
    assert LONG in page.inner_text("body")
    found += fits(page, width, "erase")
    # The same page in a second tab, filled in: submitted after the erasure below.
    twin = page.context.new_page()
    twin.set_viewport_size({"width": width, "height": 844})
    twin.goto(f"{base}/erase/{token}")
    twin.fill("#confirm-email", LONG)
    page.fill("#confirm-email", "someone.else@example.org")
    with page.expect_navigation() as sent:
        page.click("button:has-text('Erase my data')")
    assert sent.value.status == 400
    assert page.locator("#confirm-email-error").is_visible()
    assert page.input_value("#confirm-email") == "someone.else@example.org"
    found += fits(page, width, "erase with an error")
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Subscriber)) == 1

    page.fill("#confirm-email", LONG.upper())
    with page.expect_navigation() as sent:
        page.click("button:has-text('Erase my data')")
    assert sent.value.status == 200
    assert page.url == f"{base}/erased"
    assert "Your data is erased" in page.text_content("h1")
    found += fits(page, width, "erased")
    with app.app_context():
        session = db.session()
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert session.scalars(select(Delivery.subscriber_id)).all() == [None]

    # The second tab's submit, and the old links: a clear page, never an error.
    with twin.expect_navigation() as again:
        twin.click("button:has-text('Erase my data')")
    assert again.value.status == 410
    assert "Nothing stored for this link" in twin.text_content("h1")
    found += fits(twin, width, "erase submitted twice")
    assert page.goto(f"{base}/erase/{token}").status == 410
    assert page.goto(f"{base}/manage/{token}").status == 404

    [last] = outbox_messages(app, "erased", LONG)
    mail = page.context.new_page()  # away from the site's CSP, as a mail client shows it
    show_email(mail, last)
    assert "Your data is erased" in mail.inner_text("body")
    found += fits(mail, width, "erased email")

    assert found == [], "\n".join(found)
    assert problems == []
