"""Cross-cutting web concerns: body size, security headers, CSRF (Flask-WTF), error pages.

`init_app` is called once by `create_app`. A database or Redis lost while the
site runs gives a 503 page and one log line here, never a traceback.
"""

import io
import logging
from urllib.parse import unquote_to_bytes

from flask import Flask, abort, current_app, render_template, request, send_from_directory
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from newsletter.config import settings

log = logging.getLogger(__name__)

# Forms here are small; anything larger is hostile.
MAX_BODY_BYTES = 64 * 1024
# Relays post their events in batches: SendGrid's Event Webhook sends up to
# 768 KB at once, and a refused batch is retried (and refused) until dropped.
WEBHOOK_PREFIX = "/webhooks/"
MAX_WEBHOOK_BYTES = 1024 * 1024
# Set by CappedBody on a streamed body over the cap; the request is then refused.
BODY_TOO_LARGE = "newsletter.body_too_large"
# Seconds a client is asked to wait when the database or Redis is unreachable.
RETRY_AFTER_UNAVAILABLE = 60
# One year; browsers keep to https for that long after one visit.
HSTS = "max-age=31536000"

# No inline script or style anywhere, so the CSP can forbid both.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Every POST carries the session's token; the app factory initialises it after
# `init_app`, so an oversized or non-UTF-8 body is refused before the form is read.
# The RFC 8058 one-click view, POSTed by mail providers with no cookie and no
# token, is the one form exempt (`@csrf.exempt` in subscriptions.py).
csrf = CSRFProtect()

CSRF_REFUSED = lazy_gettext(
    "This form has expired or was not sent from our site. Go back, reload the page and try again."
)


def init_app(app: Flask) -> None:
    # Flask's documented way to wrap its WSGI app in middleware; mypy sees a method.
    app.wsgi_app = CappedBody(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(add_security_headers)
    app.before_request(check_body)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
    for code in (400, 403, 404, 405, 413, 429, 500):
        app.register_error_handler(code, render_error)
    app.register_error_handler(CSRFError, render_csrf_error)
    # Connection-level failures only: a constraint or data error is a bug, a 500.
    for lost in (
        OperationalError,
        InterfaceError,
        PoolTimeoutError,
        RedisConnectionError,
        RedisTimeoutError,
    ):
        app.register_error_handler(lost, render_unavailable)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY_BYTES
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings(app).BASE_URL.startswith("https://"),
        # A token lives as long as the browser session, as the session cookie does.
        WTF_CSRF_TIME_LIMIT=None,
        # Flask-WTF would also want a same-site Referer on https, which browsers
        # never send here: every page says Referrer-Policy: no-referrer.
        WTF_CSRF_SSL_STRICT=False,
    )


# Browsers ask for /favicon.ico on every site; a day in their cache.
FAVICON_MAX_AGE = 24 * 3600


def favicon():
    """The site's icon at the path browsers ask for without a <link rel=icon>."""
    return send_from_directory(
        current_app.static_folder, "favicon.ico", max_age=FAVICON_MAX_AGE, mimetype="image/x-icon"
    )


class CappedBody:
    """WSGI middleware: read a body of unknown length (chunked) up to the cap, or refuse it.

    Werkzeug stops reading such a body at MAX_CONTENT_LENGTH without an error,
    so a 10 MB chunked body became its first 64 KB, accepted. Here the body is
    read up to one byte past the cap: over it, the request is marked and
    refused with 413 by `check_body`; within it, the request goes on
    with a Content-Length, as if it had been sent with one.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        # A server that ends the stream itself (as for chunked bodies) says so with
        # wsgi.input_terminated; without it and without a length nothing is read at all.
        if environ.get("CONTENT_LENGTH") in (None, "") and environ.get("wsgi.input_terminated"):
            limit = body_cap(environ.get("PATH_INFO", ""))
            body = _read_at_most(environ["wsgi.input"], limit + 1)
            if len(body) > limit:
                environ[BODY_TOO_LARGE] = True
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def body_cap(path: str) -> int:
    """The largest body a request to `path` may carry."""
    return MAX_WEBHOOK_BYTES if path.startswith(WEBHOOK_PREFIX) else MAX_BODY_BYTES


def _read_at_most(stream, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, 16 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def add_security_headers(response):
    # A view that shows email HTML (inline styles) sets its own, still script-free, policy.
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    # Tokens live in URLs: never leak them to another site through Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint and request.endpoint not in ("static", "favicon"):
        # A view that revalidates (the feed: ETag, Last-Modified) sets its own.
        response.headers.setdefault("Cache-Control", "no-store")
    if settings().BASE_URL.startswith("https://"):
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def check_body() -> None:
    """Refuse a body over the cap (any framing), and a form body that is not UTF-8."""
    cap = body_cap(request.path)
    request.max_content_length = cap  # Werkzeug's own cap follows, per request
    if request.environ.get(BODY_TOO_LARGE) or (request.content_length or 0) > cap:
        # Also a GET with a body: nothing here reads one, and a cap is a cap.
        abort(413, description=_("That was far more text than any of our forms takes."))
    if request.method == "POST" and not form_is_utf8():
        abort(
            400,
            description=_(
                "The form held text that is not valid UTF-8. Please retype it and send it again."
            ),
        )


def form_is_utf8() -> bool:
    """False if a form body holds bytes that are not UTF-8, in either encoding forms use.

    The one check for it (the views and newsletter/forms.py see only text).
    Werkzeug keeps such bytes as %-escapes in an urlencoded body, so that body is
    checked before the form is read; in a multipart body (mail providers may
    send the one-click POST so) it has already replaced them with U+FFFD.
    """
    if request.mimetype == "application/x-www-form-urlencoded":
        try:
            for pair in request.get_data(cache=True).split(b"&"):
                unquote_to_bytes(pair.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return False
    elif request.mimetype == "multipart/form-data":
        return not any("\ufffd" in name + value for name, value in request.form.items(multi=True))
    return True


# Werkzeug's own description of an error a view raised without one, in the page's language.
DEFAULT_DESCRIPTIONS = {
    400: lazy_gettext("The request could not be understood."),
    403: lazy_gettext("You may not open this page."),
    404: lazy_gettext("There is no page at this address."),
    405: lazy_gettext("This page cannot be opened that way."),
    413: lazy_gettext("That was far more text than any of our forms takes."),
    429: lazy_gettext("Too many requests. Please wait a little and try again."),
}


def render_error(error):
    code = getattr(error, "code", 500) or 500
    description = getattr(error, "description", None)
    if not description or description == getattr(type(error), "description", None):
        description = DEFAULT_DESCRIPTIONS.get(code) or _("Something went wrong.")
    if code == 500:
        description = _("Something went wrong on our side. Please try again later.")
    response = render_template("error.html", code=code, description=description), code
    retry_after = getattr(error, "retry_after", None)
    if code == 429 and isinstance(retry_after, int):
        # Seconds until the rate limit that refused lets the next attempt in (ratelimit.attempt).
        return (*response, {"Retry-After": str(retry_after)})
    return response


def render_csrf_error(error: CSRFError):
    """A missing, forged or stale token: the site's 400 page, not Flask-WTF's reason."""
    return render_template("error.html", code=400, description=CSRF_REFUSED), 400


def render_unavailable(error: Exception):
    """A database or Redis that stopped answering: a 503 page and one log line."""
    cause = str(getattr(error, "orig", None) or error).strip().splitlines()
    log.error(
        "%s %s: 503, %s unavailable: %s",
        request.method,
        request.path,
        "Redis (REDIS_URL)"
        if isinstance(error, RedisConnectionError | RedisTimeoutError)
        else "database (DATABASE_URL)",
        cause[0] if cause else type(error).__name__,
    )
    description = _(
        "We cannot reach our database just now, so this was not done. Please try again in a minute."
    )
    page = render_template("error.html", code=503, description=description)
    return page, 503, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
