"""Cross-cutting web concerns: security headers, CSRF, error pages."""

import hmac
import secrets
from urllib.parse import unquote_to_bytes

from flask import Flask, abort, current_app, render_template, request, session

# No inline script or style anywhere, so the CSP can forbid both.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# The RFC 8058 one-click endpoint is POSTed by mail providers with no cookie
# and no token; it is the one form exempt from CSRF.
CSRF_EXEMPT_ENDPOINTS = {"subscriptions.one_click_unsubscribe"}


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
    app.before_request(reject_invalid_utf8)
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    for code in (400, 403, 404, 405, 413, 429, 500):
        app.register_error_handler(code, render_error)
    # Forms here are small; anything larger is hostile.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["MAX_FORM_MEMORY_SIZE"] = 64 * 1024
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["BASE_URL"].startswith("https://"),
    )


def add_security_headers(response):
    # A view that shows email HTML (inline styles) sets its own, still script-free, policy.
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    # Tokens live in URLs: never leak them to another site through Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint and request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def reject_invalid_utf8() -> None:
    """Refuse a form body that is not UTF-8 (Werkzeug would keep it as %-escapes)."""
    if request.method != "POST":
        return
    if (request.content_length or 0) > current_app.config["MAX_CONTENT_LENGTH"]:
        abort(413, description="That was far more text than any of our forms takes.")
    if request.mimetype != "application/x-www-form-urlencoded":
        return
    body = request.get_data(cache=True)
    try:
        for pair in body.split(b"&"):
            unquote_to_bytes(pair.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        abort(
            400,
            description="The form held text that is not valid UTF-8. "
            "Please retype it and send it again.",
        )


def csrf_token() -> str:
    """This browser session's CSRF token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    if request.method != "POST" or request.endpoint in CSRF_EXEMPT_ENDPOINTS:
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(
            400,
            description="This form has expired or was not sent from our site. "
            "Go back, reload the page and try again.",
        )


def render_error(error):
    code = getattr(error, "code", 500) or 500
    description = getattr(error, "description", None) or "Something went wrong."
    if code == 500:
        description = "Something went wrong on our side. Please try again later."
    response = render_template("error.html", code=code, description=description), code
    if code == 429:
        # Rate-limit windows are an hour long.
        return (*response, {"Retry-After": "3600"})
    return response
