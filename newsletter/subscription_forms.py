"""What the subscription pages share (newsletter/subscriptions.py calls it).

The sign-up and manage form with its choices and its keyword preview, the
subscriber a link's token names, and the tokens of a subscriber's manage and
unsubscribe links.
"""

from flask import abort, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from newsletter import db, forms, preview
from newsletter.config import settings as app_settings
from newsletter.i18n import current_locale, use_subscriber_locale
from newsletter.languages import language_choices
from newsletter.locales import subscriber_locale
from newsletter.models import Subscriber
from newsletter.tokens import make_token, read_token


def offered_languages() -> dict[str, str]:
    """Language value -> label: English, and English + TRANSLATION_LANGUAGE with a backend."""
    config = app_settings()
    choices = language_choices(config.TRANSLATION_LANGUAGE, config.TRANSLATION_BACKEND != "none")
    # "English" in the page's language; the other language keeps its own name.
    return {code: label.replace("English", _("English"), 1) for code, label in choices.items()}


def default_language() -> str:
    """The form's language for a new reader: the one whose interface is this page's."""
    page = current_locale()
    return next((code for code in offered_languages() if subscriber_locale(code) == page), "en")


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
            description=_("Too many previews. Please wait a little and try again."),
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
        abort(404, description=_("This link is not valid. It may have been mistyped or cut off."))
    subscriber = db.session().scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None:
        abort(404, description=_("This link is not valid any more."))
    # The page is in the subscriber's language (newsletter/i18n.py).
    use_subscriber_locale(subscriber.language)
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
        "tldr": subscriber.tldr,
        "delivery_hour": subscriber.delivery_hour,
        "frequency": subscriber.frequency,
        "weekday": subscriber.weekday,
    }
