"""The site's language (Flask-Babel): which one a page is in, and the switch between them.

`init_app` is called once by `create_app`. A page's language is, first to last:
- `?lang=` on the URL: the switch's links (base.html) carry it, so the page the
  reader asked for is in the language they picked;
- the subscriber's own language on a page opened from one of their links
  (manage, unsubscribe, confirm; the views call `use_subscriber_locale`): a
  reader of English + 简体中文 digests gets 简体中文 (newsletter/locales.py);
- the `lang` cookie, which a GET with `?lang=` sets (a year, SameSite=Lax). It
  is the one state a GET changes: a preference in the reader's own browser,
  nothing on the server;
- the browser's Accept-Language; English if none of its languages is offered.
No JavaScript is involved. The catalogues and the locale rules that the worker
also needs are in newsletter/locales.py.
"""

from typing import NamedTuple
from urllib.parse import urlencode

from flask import Flask, current_app, g, has_request_context, request, url_for
from flask_babel import Babel, get_locale, refresh
from werkzeug.exceptions import HTTPException

from newsletter.locales import (
    ENGLISH,
    LOCALES,
    TRANSLATIONS,
    html_lang,
    language_locale,
    short_day,
    subscriber_locale,
)

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

babel = Babel()


def init_app(app: Flask) -> None:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    babel.init_app(app, default_locale=ENGLISH, locale_selector=select_locale)
    app.before_request(forget_locale)
    app.after_request(remember_choice)
    app.context_processor(page_language)


def asked_locale() -> str | None:
    """The locale `?lang=` names, if it names one offered."""
    tag = request.args.get("lang", "")
    return language_locale(tag) if tag else None


def select_locale() -> str:
    """The locale of this request's page (the order is the module docstring's)."""
    if not has_request_context():
        # A CLI command or job inside the app context: messages stay English.
        return ENGLISH
    asked = asked_locale()
    if asked:
        return asked
    chosen = g.get("subscriber_locale")
    if chosen:
        return chosen
    cookie = language_locale(request.cookies.get(COOKIE, ""))
    if cookie:
        return cookie
    for tag, _quality in request.accept_languages:
        found = language_locale(tag)
        if found:
            return found
    return ENGLISH


def forget_locale() -> None:
    """Choose afresh per request: Flask-Babel keeps its choice on `g`, which a request
    shares with an app context already pushed (a CLI command's, a test's)."""
    g.pop("subscriber_locale", None)
    refresh()


def use_subscriber_locale(language: str) -> None:
    """Show this page in the subscriber's language (their digest language decides)."""
    g.subscriber_locale = subscriber_locale(language)
    refresh()


def current_locale() -> str:
    return str(get_locale() or ENGLISH)


def remember_choice(response):
    """A GET of a page with ?lang= keeps the choice in a cookie for the pages without one.

    Only a page's: the keyword preview's script (static/preview.js) asks with the
    page's own language, which is no choice of the reader's.
    """
    asked = asked_locale()
    if asked and request.method == "GET" and response.mimetype == "text/html":
        response.set_cookie(COOKIE, asked, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)
    return response


class SwitchLink(NamedTuple):
    label: str  # the language's own name
    url: str  # this page in that language
    lang: str  # its BCP 47 tag (hreflang, lang)
    current: bool  # the page is in it


def switch_links() -> list[SwitchLink]:
    """Each locale's link of the language switch: this page, in that language.

    A page a POST answered (a form with errors, the unsubscribed page) links
    to the page at the same address if it has a GET view, else to the sign-up page.
    """
    path = request.path if _has_get_view(request.path) else url_for("subscriptions.signup")
    args = request.args.to_dict() if request.method == "GET" else {}
    current = current_locale()
    links = []
    for locale, label in LOCALES.items():
        query = urlencode({**args, "lang": locale})
        links.append(SwitchLink(label, f"{path}?{query}", html_lang(locale), locale == current))
    return links


def _has_get_view(path: str) -> bool:
    adapter = current_app.create_url_adapter(request)
    if adapter is None:
        return False
    try:
        adapter.match(path, method="GET")
    except HTTPException:
        return False
    return True


def page_language() -> dict:
    """Templates' `html_lang` (for <html lang>), `language_switch` and `short_day`."""
    locale = current_locale()
    return {
        "html_lang": html_lang(locale),
        "language_switch": switch_links,
        "short_day": lambda day: short_day(locale, day),
    }
