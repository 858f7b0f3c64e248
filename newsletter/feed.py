"""A subscriber's personal Atom feed of their matches (blueprint `bp`).

GET /feed/<token> (a "feed" token, newsletter/tokens.py `feed_url`; it grants
nothing else) answers an Atom 1.0 feed of the papers the subscriber's keyword
lines matched on the last FEED_DATES complete listing dates stored: one entry
per paper, its matching lines as categories. The digest core decides what
matched (worker/digest/core.py, `DayDigest.sections`, the day's own papers as
the email of that day has them), so feed and email never disagree. The
manage page shows the URL (template global `feed_url_for`).

Cheap and cacheable: the validators (ETag, Last-Modified) come from the
listing days (their papers' count and newest updated_at, read again by a
process after DAYS_TTL) and the subscriber's row, so a reader's
If-None-Match / If-Modified-Since gets a 304 before any paper is read. Per
process and keyed by the day as stored, each (day, reader)'s sections and each
paper's rendered entry are kept, so an unchanged day is neither matched nor
rendered again, and a paper is rendered once for every reader it matches
(newsletter/feed_cache.py). Read-only. Figures: benchmarks/feed.py.
"""

import hashlib
import json
from datetime import datetime

from flask import Blueprint, Response, abort, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.http import is_resource_modified

from newsletter import atom, db
from newsletter.config import settings
from newsletter.feed_cache import (
    FEED_DATES,
    EntryKey,
    FeedDay,
    day_sections,
    entry_heads,
    feed_days,
    matched_lines,
    newest_tldr,
)
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.tokens import feed_url, read_token
from worker.digest.core import Reader

bp = Blueprint("feed", __name__)

# Bump when the feed's markup changes, so every cached copy is refetched.
# 2: entries in the digest's relevance order (worker/digest/relevance.py).
FEED_FORMAT = 2
# Readers whose feed is served: a paused subscriber keeps the feed.
SERVED = (SubscriberStatus.CONFIRMED, SubscriberStatus.PAUSED)
NOT_VALID = lazy_gettext("This feed link is not valid. It may have been mistyped or cut off.")


def last_modified(
    subscriber: Subscriber, days: list[FeedDay], tldrs_at: datetime | None = None
) -> datetime:
    """The newest instant among the data the feed shows (`tldrs_at`: its newest TL;DR's)."""
    instants = [subscriber.updated_at] + ([tldrs_at] if tldrs_at is not None else [])
    instants += [d.completed_at for d in days]
    instants += [d.newest_paper for d in days if d.newest_paper is not None]
    return max(instants)


def entity_tag(
    reader: Reader, subscriber: Subscriber, days: list[FeedDay], tldrs_at: datetime | None = None
) -> str:
    """A strong ETag: changes with the days as stored, the reader's lines and settings."""
    state = [
        *([tldrs_at.isoformat()] if tldrs_at is not None else []),
        FEED_FORMAT,
        subscriber.public_id,
        list(reader.keywords),
        reader.include_replacements,
        subscriber.updated_at.isoformat(),
        [
            [d.listing_date.isoformat(), d.completed_at.isoformat(), d.paper_count]
            + [d.newest_paper.isoformat() if d.newest_paper else None]
            for d in days
        ],
    ]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:32]


def feed_document(
    session: Session,
    lines: dict[EntryKey, list[str]],
    self_url: str,
    base_url: str,
    public_id: str,
    updated: datetime,
    tldr: bool = False,
) -> bytes:
    """The reader's Atom document: one entry per paper, its matching lines as categories."""
    host = atom.tag_host(base_url)
    heads = entry_heads(session, host, lines, tldr)
    return atom.render_feed(
        atom.FeedHead(
            title="arXiv digest: your matches",
            subtitle=f"Papers your keyword lines matched on the last {FEED_DATES} listing dates.",
            feed_id=atom.tag(host, f"feed:{public_id}"),
            updated=updated,
            self_url=self_url,
            home_url=f"{base_url}/",
        ),
        # A paper gone since the day's counts were read has no head: left out.
        ((heads[key], keywords) for key, keywords in lines.items() if key in heads),
    )


def load_feed_subscriber(token: str) -> Subscriber:
    """The subscriber a valid feed token names, if their feed is served; else 404."""
    public_id = read_token(settings().SECRET_KEY, "feed", token)
    if not isinstance(public_id, str):
        abort(404, description=NOT_VALID)
    subscriber = db.session().scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None or subscriber.status not in SERVED:
        abort(404, description=_("This feed is not available any more."))
    return subscriber


@bp.get("/feed/<token>")
def show(token: str) -> Response:
    subscriber = load_feed_subscriber(token)
    session = db.session()
    reader = Reader.of(subscriber)
    days = feed_days(session)
    # A reader who ticked TL;DR (worker/translation/tldr.py) sees them as they come.
    tldrs_at = newest_tldr(session) if reader.tldr else None
    etag = entity_tag(reader, subscriber, days, tldrs_at)
    modified = last_modified(subscriber, days, tldrs_at)
    headers = {"Cache-Control": "private, no-cache"}
    if not is_resource_modified(request.environ, etag=etag, last_modified=modified):
        response = Response(status=304, headers=headers)
    else:
        sections = day_sections(session, settings(), reader, days)
        # The URL as requested: a fresh token would change the body, not the data.
        base_url = settings().BASE_URL
        body = feed_document(
            session,
            matched_lines(days, sections),
            f"{base_url}/feed/{token}",
            base_url,
            subscriber.public_id,
            modified,
            reader.tldr,
        )
        response = Response(
            body, headers=headers, content_type="application/atom+xml; charset=utf-8"
        )
    response.set_etag(etag)
    response.last_modified = modified
    return response


@bp.app_template_global()
def feed_url_for(subscriber: Subscriber) -> str:
    """The subscriber's feed URL, for the manage page."""
    return feed_url(settings(), subscriber.public_id)
