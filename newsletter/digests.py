"""The "view in browser" page of a subscriber's digest (blueprint `bp`).

GET /digest/<token> shows one subscriber's digest for one listing date with
every paper in full (no per-keyword limit, all authors). It shows what the
email held when one was made (the Delivery row's `sections`), otherwise what
the subscriber's current keywords match; the digest core (worker/digest/core.py,
`DayDigest`) decides both and renders the page. Read-only: it never changes state.

The day's DayDigest is the process's (worker/digest/day_cache.py), made again
when the day changed: a page renders each paper's entry from the pieces
earlier views made (a demo day's page: ~90 ms of CPU when each view made
its own, most of it tokenizing and highlighting the abstracts).
"""

import threading
from datetime import date

from flask import Blueprint, abort
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import select

from newsletter import db
from newsletter.config import settings
from newsletter.models import Delivery, Subscriber
from newsletter.tokens import read_token, subscriber_links
from worker.digest.core import Reader
from worker.digest.day_cache import day_digest

bp = Blueprint("digests", __name__)

# The page is the email's own HTML, which styles inline: allow inline style,
# still no script of any kind, no framing, images only over https.
DIGEST_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
NOT_VALID = lazy_gettext("This link is not valid. It may have been mistyped or cut off.")
# A threaded server (`newsletter dev`) may show two pages at once; one DayDigest
# is not for two threads (its caches).
_DAY_LOCK = threading.Lock()


def _read_digest_token(token: str) -> tuple[str, date]:
    """(public_id, listing_date) from a digest token, or 404."""
    payload = read_token(settings().SECRET_KEY, "digest", token)
    if not (
        isinstance(payload, list) and len(payload) == 2 and all(isinstance(p, str) for p in payload)
    ):
        abort(404, description=NOT_VALID)
    try:
        return payload[0], date.fromisoformat(payload[1])
    except ValueError:
        abort(404, description=NOT_VALID)


@bp.get("/digest/<token>")
def show(token: str):
    public_id, listing_date = _read_digest_token(token)
    session = db.session()
    subscriber = session.scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None:
        abort(404, description=NOT_VALID)
    reader = Reader.of(subscriber)
    delivery = session.scalar(
        select(Delivery).where(
            Delivery.subscriber_id == subscriber.id, Delivery.listing_date == listing_date
        )
    )
    # A weekly digest's page shows its range of listing dates, as its email did.
    first = delivery.first_listing_date if delivery is not None else None
    generated_at = (
        (delivery.sent_at or delivery.created_at) if delivery is not None else db.utcnow()
    )
    links = subscriber_links(settings(), subscriber.public_id, listing_date)
    engine = session.get_bind().engine
    with _DAY_LOCK:
        day = day_digest(engine, settings(), listing_date, first)
        if delivery is not None and delivery.sections is not None:
            # Exactly what the email held, minus any paper no longer on this day.
            sections = day.current(delivery.sections)
        else:
            sections = day.sections({subscriber.id: reader})[subscriber.id]
        page = day.render_page(reader, sections, generated_at, links) if sections else None
    if page is None:
        abort(404, description=_("There is no digest for this date any more."))
    return (
        page,
        200,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": DIGEST_PAGE_CSP,
        },
    )
