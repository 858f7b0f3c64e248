"""Signed tokens for links in emails, one purpose each.

A token carries a subscriber's random public_id (never the address), signed
with SECRET_KEY and salted by purpose, so a manage token cannot confirm and an
unsubscribe token cannot manage. Confirmation tokens expire after 7 days;
unsubscribe tokens never do, nor do feed tokens (a feed reader keeps its URL
for years). A feed token only reads the feed: it cannot manage, and a manage
token cannot read the feed.
"""

from datetime import date

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from newsletter.config import Settings

CONFIRM_MAX_AGE = 7 * 24 * 3600
PURPOSES = ("confirm", "manage", "unsubscribe", "digest", "feed")


class ExpiredToken(Exception):
    """A well-signed token past its age; carries the public_id it named."""

    def __init__(self, public_id: str):
        self.public_id = public_id


def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    assert purpose in PURPOSES
    return URLSafeTimedSerializer(secret_key, salt=f"newsletter.{purpose}")


def make_token(secret_key: str, purpose: str, payload: str | list) -> str:
    """Sign `payload` for one purpose."""
    return _serializer(secret_key, purpose).dumps(payload)


def read_token(secret_key: str, purpose: str, token: str, max_age: int | None = None):
    """The payload of a valid token, or None; ExpiredToken if only too old."""
    serializer = _serializer(secret_key, purpose)
    try:
        return serializer.loads(token, max_age=max_age)
    except SignatureExpired as error:
        if error.payload is None:
            return None
        try:
            payload = serializer.load_payload(error.payload)
        except BadSignature:
            return None
        raise ExpiredToken(payload) from None
    except BadSignature:
        return None


def subscriber_links(
    config: Settings, public_id: str, listing_date: date | None = None
) -> dict[str, str]:
    """Absolute URLs for a subscriber's emails, built from BASE_URL."""
    base, key = config.BASE_URL, config.SECRET_KEY
    unsubscribe = make_token(key, "unsubscribe", public_id)
    links = {
        "manage_url": f"{base}/manage/{make_token(key, 'manage', public_id)}",
        "unsubscribe_url": f"{base}/unsubscribe/{unsubscribe}",
        "one_click_url": f"{base}/unsubscribe/one-click/{unsubscribe}",
        "feed_url": feed_url(config, public_id),
    }
    if listing_date is not None:
        token = make_token(key, "digest", [public_id, listing_date.isoformat()])
        links["view_url"] = f"{base}/digest/{token}"
    return links


def feed_url(config: Settings, public_id: str) -> str:
    """The subscriber's personal Atom feed (newsletter/feed.py); it grants nothing else."""
    return f"{config.BASE_URL}/feed/{make_token(config.SECRET_KEY, 'feed', public_id)}"


def confirm_url(config: Settings, public_id: str) -> str:
    return f"{config.BASE_URL}/confirm/{make_token(config.SECRET_KEY, 'confirm', public_id)}"
