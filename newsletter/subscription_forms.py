"""What the subscription pages share (newsletter/subscriptions.py calls it).

The sign-up and manage form with its choices and its keyword preview, the
subscriber a link's token names, and the tokens of a subscriber's manage and
unsubscribe links.
"""

from flask import abort, render_template, request
from sqlalchemy import select

from newsletter import db, forms, preview
from newsletter.config import settings as app_settings
from newsletter.languages import language_choices
from newsletter.models import Subscriber
from newsletter.tokens import make_token, read_token


def offered_languages() -> dict[str, str]:
    """Language value -> label: English, and English + TRANSLATION_LANGUAGE with a backend."""
    config = app_settings()
    return language_choices(config.TRANSLATION_LANGUAGE, config.TRANSLATION_BACKEND != "none")


def render_form(template: str, values: dict, errors: dict, status: int = 200, **extra):
    return (
        render_template(
            template,
            values=values,
            errors=errors,
            languages=offered_languages(),
            timezones=forms.timezone_choices(),
            **extra,
        ),
        status,
    )


def preview_form(template: str, **extra):
    """The form again, as typed, with its keyword preview; stores nothing (newsletter/preview.py)."""
    wait = preview.refused()
    if wait:
        abort(
            429,
            description="Too many previews. Please wait a little and try again.",
            retry_after=wait,
        )
    error, shown = preview.form_preview(request.form)
    values = preview.form_values(request.form, offered_languages())
    errors = {"keywords": error} if error else {}
    return render_form(
        template, values, errors, status=400 if error else 200, preview=shown, **extra
    )


def load_subscriber(purpose: str, token: str, max_age: int | None = None) -> Subscriber:
    """The subscriber a valid token names, or 404. ExpiredToken passes through."""
    public_id = read_token(app_settings().SECRET_KEY, purpose, token, max_age=max_age)
    if not isinstance(public_id, str):
        abort(404, description="This link is not valid. It may have been mistyped or cut off.")
    subscriber = db.session().scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None:
        abort(404, description="This link is not valid any more.")
    return subscriber


def manage_token(subscriber: Subscriber) -> str:
    return make_token(app_settings().SECRET_KEY, "manage", subscriber.public_id)


def unsubscribe_token(subscriber: Subscriber) -> str:
    return make_token(app_settings().SECRET_KEY, "unsubscribe", subscriber.public_id)


def manage_values(subscriber: Subscriber) -> dict:
    return {
        "keywords_text": "\n".join(subscriber.keyword_lines),
        "language": subscriber.language,
        "timezone": subscriber.timezone,
        "include_replacements": subscriber.include_replacements,
        "delivery_hour": subscriber.delivery_hour,
    }
