"""Every email's HTML names its language: English (`<html lang="en">`, not MJML's "und").

A bilingual digest is English with its translated titles and abstracts marked
by their own lang attribute (tests/test_digest.py checks those).
"""

import emails


def test_account_emails_say_they_are_english():
    confirm = emails.render("confirm", keywords=["diffusion policy"], confirm_url="https://x/c/t")
    known = emails.render(
        "already_subscribed",
        manage_url="https://x/m/t",
        unsubscribe_url="https://x/u/t",
        one_click_url="https://x/o/t",
        view_url="https://x/v/t",
    )
    for rendered in (confirm, known):
        assert rendered.html.startswith('<!doctype html><html lang="en"'), rendered.html[:80]
        assert 'lang="und"' not in rendered.html
