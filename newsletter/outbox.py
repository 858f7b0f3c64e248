"""Dev-only pages showing the mail written to the local outbox (SMTP_HOST unset).

Registered only in dev mode, so production never serves them.
"""

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from flask import Blueprint, abort, render_template

from newsletter.config import settings

bp = Blueprint("outbox", __name__, url_prefix="/dev/outbox")

FILE_NAME = re.compile(r"[0-9]+-[A-Za-z0-9._-]+\.eml")


def outbox_files() -> list[Path]:
    folder = Path(settings().OUTBOX_DIR)
    return sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []


def read_message(name: str) -> EmailMessage:
    if not FILE_NAME.fullmatch(name):
        abort(404)
    path = Path(settings().OUTBOX_DIR) / name
    if not path.is_file():
        abort(404)
    return message_from_bytes(path.read_bytes(), policy=policy.default)


@bp.get("/")
def index():
    messages = [(path.name, read_message(path.name)) for path in outbox_files()[:200]]
    return render_template("outbox.html", messages=messages)


@bp.get("/<name>")
def show(name: str):
    message = read_message(name)
    text = message.get_body(("plain",))
    body = text.get_content() if text is not None else ""
    links = sorted(set(re.findall(r"https?://[^\s<>\"']+", body)))
    return render_template(
        "outbox_message.html", name=name, message=message, body=body, links=links
    )


@bp.get("/<name>/html")
def show_html(name: str):
    html = read_message(name).get_body(("html",))
    if html is None:
        abort(404)
    # The email's own HTML: inline styles allowed, scripts still forbidden.
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'"
    return (
        html.get_content(),
        200,
        {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": csp},
    )
