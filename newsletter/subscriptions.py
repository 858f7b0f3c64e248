"""Sign-up, double opt-in, manage and unsubscribe pages (blueprint `bp`).

Links in emails only ever open a page; its button POSTs (mail scanners follow
links). The one exception is RFC 8058's one-click POST, which mail providers
send without cookies or tokens. What the pages share (the form, the subscriber
a token names) is in newsletter/subscription_forms.py.
"""

from flask import (
    Blueprint,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select

from newsletter import db, forms, my_data, ratelimit
from newsletter.config import settings as app_settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.subscription_forms import (
    default_language,
    load_subscriber,
    manage_token,
    manage_values,
    offered_languages,
    preview_form,
    render_form,
    unsubscribe_token,
)
from newsletter.tokens import CONFIRM_MAX_AGE, ExpiredToken
from newsletter.web import csrf
from worker.queue import enqueue

bp = Blueprint("subscriptions", __name__)
# Download my data, erase me: reached from the manage page (newsletter/my_data.py).
bp.register_blueprint(my_data.bp)


def set_keywords(subscriber: Subscriber, keywords: list[str]) -> None:
    if keywords != subscriber.keyword_lines:
        # The keyword rows are not the subscriber's row: date the change there
        # (the feed's Last-Modified, newsletter/feed.py).
        subscriber.updated_at = db.utcnow()
    subscriber.keywords.clear()
    db.session().flush()
    subscriber.keywords.extend(Keyword(position=i, text=text) for i, text in enumerate(keywords))


def client_ip() -> str:
    return request.remote_addr or "unknown"


@bp.get("/")
def signup():
    values = {"timezone": "UTC", "language": default_language()}
    return render_form("signup.html", values=values, errors={})


@bp.post("/")
def signup_post():
    form = request.form
    if form.get("preview"):
        return preview_form("signup.html")
    result = forms.read_settings(form, offered_languages())
    email, error = forms.clean_email(
        form.get("email", ""), app_settings().EMAIL_CHECK_DELIVERABILITY
    )
    if error:
        result.errors["email"] = error
    values = {
        **result.values,
        "email": form.get("email", "")[:300],
        "keywords_text": form.get("keywords", "")[:5000],
    }
    if result.errors:
        return render_form("signup.html", values, result.errors, status=400)

    config = app_settings()
    # An address is not counted once its IP is refused.
    wait = ratelimit.attempt(f"ip:{client_ip()}", config.SIGNUP_LIMIT_PER_IP) or ratelimit.attempt(
        f"address:{email.casefold()}", config.SIGNUP_LIMIT_PER_ADDRESS
    )
    if wait:
        abort(
            429,
            description=_("Too many sign-up attempts. Please wait an hour and try again."),
            retry_after=wait,
        )

    # Known or not, the request does the same: one job, which does the writing.
    settings = {name: result.values[name] for name in ("keywords", *forms.SETTING_FIELDS)}
    # Jobs are queued by name: the web process never imports their code (worker/queue.py).
    enqueue("newsletter.signups.register_sign_up", email, settings)
    return redirect(url_for("subscriptions.check_email"))


@bp.get("/check-email")
def check_email():
    return render_template("check_email.html")


@bp.get("/confirm/<token>")
def confirm(token: str):
    try:
        subscriber = load_subscriber("confirm", token, max_age=CONFIRM_MAX_AGE)
    except ExpiredToken:
        return render_template("confirm_expired.html", token=token), 410
    return render_template("confirm.html", subscriber=subscriber, token=token)


@bp.post("/confirm/<token>")
def confirm_post(token: str):
    try:
        subscriber = load_subscriber("confirm", token, max_age=CONFIRM_MAX_AGE)
    except ExpiredToken:
        return render_template("confirm_expired.html", token=token), 410
    if subscriber.status is SubscriberStatus.UNCONFIRMED:
        subscriber.status = SubscriberStatus.CONFIRMED
        subscriber.confirmed_at = db.utcnow()
        db.session().commit()
        # The day's digest now, not at the next poll (same ledger: a racing poll adds nothing).
        enqueue(
            "worker.jobs.dispatch_confirmed_digest",
            subscriber.id,
            job_id=f"confirm-digest-{subscriber.id}",
        )
    return redirect(url_for("subscriptions.manage", token=manage_token(subscriber), confirmed=1))


@bp.post("/confirm/<token>/resend")
def confirm_resend(token: str):
    """Send a fresh confirmation link in place of an expired one."""
    try:
        subscriber = load_subscriber("confirm", token, max_age=CONFIRM_MAX_AGE)
    except ExpiredToken as expired:
        found = db.session().scalar(
            select(Subscriber).where(Subscriber.public_id == expired.public_id)
        )
        if found is None:
            abort(404, description=_("This link is not valid any more."))
        subscriber = found
    wait = ratelimit.attempt(
        f"address:{subscriber.email_key}", app_settings().SIGNUP_LIMIT_PER_ADDRESS
    )
    if wait:
        abort(
            429,
            description=_("Too many requests for this address. Please wait an hour and try again."),
            retry_after=wait,
        )
    if subscriber.status is SubscriberStatus.UNCONFIRMED:
        enqueue("worker.jobs.send_confirmation", subscriber.id)
    return redirect(url_for("subscriptions.check_email"))


@bp.get("/manage/<token>")
def manage(token: str):
    subscriber = load_subscriber("manage", token)
    return render_form(
        "manage.html",
        manage_values(subscriber),
        {},
        subscriber=subscriber,
        token=token,
        unsubscribe_token=unsubscribe_token(subscriber),
        notice=_("Your subscription is confirmed.")
        if request.args.get("confirmed")
        else _("Your settings are saved.")
        if request.args.get("saved")
        else None,
    )


@bp.post("/manage/<token>")
def manage_post(token: str):
    subscriber = load_subscriber("manage", token)
    if request.form.get("preview"):
        return preview_form(
            "manage.html",
            subscriber=subscriber,
            token=token,
            notice=None,
            unsubscribe_token=unsubscribe_token(subscriber),
        )
    result = forms.read_settings(request.form, offered_languages())
    if result.errors:
        values = {**result.values, "keywords_text": request.form.get("keywords", "")[:5000]}
        return render_form(
            "manage.html",
            values,
            result.errors,
            status=400,
            subscriber=subscriber,
            token=token,
            notice=None,
            unsubscribe_token=unsubscribe_token(subscriber),
        )
    set_keywords(subscriber, result.values["keywords"])
    subscriber.language = result.values["language"]
    subscriber.timezone = result.values["timezone"]
    subscriber.include_replacements = result.values["include_replacements"]
    subscriber.tldr = result.values["tldr"]
    subscriber.delivery_hour = result.values["delivery_hour"]
    subscriber.choose_frequency(result.values["frequency"], result.values["weekday"])
    db.session().commit()
    return redirect(url_for("subscriptions.manage", token=token, saved=1))


# Which status each manage-page button leads to, from which statuses.
STATUS_CHANGES = {
    "pause": ({SubscriberStatus.CONFIRMED}, SubscriberStatus.PAUSED),
    "resume": (
        {SubscriberStatus.PAUSED, SubscriberStatus.UNSUBSCRIBED},
        SubscriberStatus.CONFIRMED,
    ),
}


@bp.post("/manage/<token>/<action>")
def manage_status(token: str, action: str):
    subscriber = load_subscriber("manage", token)
    if action not in STATUS_CHANGES:
        abort(404)
    allowed_from, new_status = STATUS_CHANGES[action]
    if subscriber.status in allowed_from:
        subscriber.status = new_status
        subscriber.unsubscribed_at = None
        db.session().commit()
    return redirect(url_for("subscriptions.manage", token=token, saved=1))


@bp.get("/unsubscribe/<token>")
@bp.get("/unsubscribe/one-click/<token>")
def unsubscribe(token: str):
    subscriber = load_subscriber("unsubscribe", token)
    return render_template("unsubscribe.html", subscriber=subscriber, token=token)


def unsubscribe_now(subscriber: Subscriber) -> None:
    if subscriber.status is not SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        subscriber.unsubscribed_at = db.utcnow()
        db.session().commit()


@bp.post("/unsubscribe/<token>")
def unsubscribe_post(token: str):
    subscriber = load_subscriber("unsubscribe", token)
    unsubscribe_now(subscriber)
    return render_template("unsubscribed.html", manage_token=manage_token(subscriber))


@bp.post("/unsubscribe/one-click/<token>")
@csrf.exempt
def one_click_unsubscribe(token: str):
    """RFC 8058: no cookie, no CSRF token, no login, no redirect."""
    if request.form.get("List-Unsubscribe") != "One-Click":
        abort(400, description="Expected the body List-Unsubscribe=One-Click.")
    subscriber = load_subscriber("unsubscribe", token)
    unsubscribe_now(subscriber)
    return "You are unsubscribed.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
