"""A subscriber's own data from the manage page: download it, erase it (blueprint `bp`,
nested in newsletter/subscriptions.py's, so its endpoints read `subscriptions.my_data.*`).

Both act on the manage token and are POSTs behind the site's CSRF check. The
download writes nothing. Erasing asks first (a page with the address to type
again), then removes the subscriber (newsletter/personal_data.py), commits,
queues the last email to the address and redirects to a page that needs no
token. A token whose subscriber is gone (erased, or deleted by the operator)
answers a page saying so, 410, on every route here: a second POST, a
reload or an old link is never an error.
"""

import json
from datetime import UTC

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy import select

from newsletter import db
from newsletter.config import settings as app_settings
from newsletter.i18n import use_subscriber_locale
from newsletter.locales import ENGLISH, subscriber_locale
from newsletter.models import Subscriber
from newsletter.personal_data import erase_subscriber, export_data
from newsletter.tokens import read_token
from worker.queue import enqueue

bp = Blueprint("my_data", __name__)

# Longer than any address the sign-up form takes (newsletter/forms.py).
TYPED_MAX = 320
# A day for the operator to see why the last email failed; then RQ forgets the job and its address.
ERASED_NOTICE_FAILURE_TTL = 24 * 3600


def subscriber_or_gone(token: str) -> Subscriber:
    """The subscriber a manage token names; 404 for a bad token, the 'gone' page if erased."""
    public_id = read_token(app_settings().SECRET_KEY, "manage", token)
    if not isinstance(public_id, str):
        abort(
            404,
            description=gettext("This link is not valid. It may have been mistyped or cut off."),
        )
    subscriber = db.session().scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None:
        # Well signed, so it named a subscriber once: one who is erased now.
        abort(gone())
    use_subscriber_locale(subscriber.language)
    return subscriber


def gone():
    """The page for a token whose subscriber is erased: 410, whatever was asked."""
    return make_response(render_template("erased.html", gone=True), 410)


@bp.post("/my-data/<token>")
def download(token: str):
    subscriber = subscriber_or_gone(token)
    data = export_data(db.session(), subscriber, db.utcnow().astimezone(UTC))
    body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return (
        body,
        200,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": 'attachment; filename="arxiv-digest-my-data.json"',
            # Personal data: no cache, shared or private, keeps a copy.
            "Cache-Control": "no-store",
        },
    )


@bp.get("/erase/<token>")
def erase(token: str):
    subscriber = subscriber_or_gone(token)
    return render_template("erase.html", subscriber=subscriber, token=token, error=None)


@bp.post("/erase/<token>")
def erase_post(token: str):
    subscriber = subscriber_or_gone(token)
    typed = request.form.get("email", "")[:TYPED_MAX]
    if typed.strip().casefold() != subscriber.email.casefold():
        error = gettext("Type your address exactly as shown above to erase it.")
        return render_template(
            "erase.html", subscriber=subscriber, token=token, error=error, typed=typed
        ), 400
    session = db.session()
    erased = erase_subscriber(session, subscriber)
    session.commit()
    if erased is None:  # a concurrent request erased it first, and sends the email
        return gone()
    if erased.may_mail:
        enqueue(
            "newsletter.erased_notice.send_erased_notice",
            erased.email,
            erased.language,
            db.utcnow().date().isoformat(),
            # The address is the job's argument: a failed job must not keep it for RQ's year.
            failure_ttl=ERASED_NOTICE_FAILURE_TTL,
        )
    # The page after is in the reader's language too: their row, which said so, is gone.
    locale = subscriber_locale(erased.language)
    shown = None if locale == ENGLISH else locale
    return redirect(url_for("subscriptions.my_data.erased", lang=shown))


@bp.get("/erased")
def erased():
    return render_template("erased.html", gone=False)
