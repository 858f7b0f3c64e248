"""A subscriber's personal Atom feed of their matches (blueprint `bp`).

GET /feed/<token> (a "feed" token, newsletter/tokens.py `feed_url`; it grants
nothing else) answers an Atom 1.0 feed of the papers the subscriber's keyword
lines matched on the last FEED_DATES complete listing dates stored: one entry
per paper, its matching lines as categories. The digest core decides what
matched (worker/digest/core.py, `DayDigest.sections`, the day's own papers as
the email of that day has them), so feed and email never disagree. The
manage page shows the URL (template global `feed_url_for`).

Cheap and cacheable: the validators (ETag, Last-Modified) come from three
small queries (the listing days, per-day paper counts and newest updated_at,
the subscriber), so a reader's If-None-Match / If-Modified-Since gets a 304
before any paper is read; each day's sections are kept per (day as stored,
reader) in a small per-process cache, so an unchanged day is not matched
again. Read-only.
"""

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.http import is_resource_modified

from newsletter import db
from newsletter.models import ListingDay, Paper, Subscriber, SubscriberStatus
from newsletter.tokens import feed_url, read_token
from worker import calendar
from worker.digest.core import DayDigest, Reader, Sections
from worker.digest.entries import readable

bp = Blueprint("feed", __name__)

ATOM = "http://www.w3.org/2005/Atom"
# Complete listing dates the feed covers (about six weeks of announcements).
FEED_DATES = 30
# Bump when the feed's markup changes, so every cached copy is refetched.
FEED_FORMAT = 1
# The date in the tag: URIs of entries and feeds (RFC 4151); never change it.
TAG_DATE = "2026"
# Readers whose feed is served: a paused subscriber keeps the feed.
SERVED = (SubscriberStatus.CONFIRMED, SubscriberStatus.PAUSED)
# (day as stored, reader) -> that day's sections: about 30 days of ~100 readers.
SECTIONS_KEPT = 4096
_IN_BATCH = 500
NOT_VALID = "This feed link is not valid. It may have been mistyped or cut off."
# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

ET.register_namespace("", ATOM)


@dataclass(frozen=True)
class FeedDay:
    """A complete listing date as stored: what its sections depend on."""

    listing_date: date
    completed_at: datetime
    paper_count: int
    newest_paper: datetime | None


@dataclass(frozen=True)
class FeedEntry:
    """One paper in the feed, with the subscriber's lines that matched it."""

    paper: Paper
    keywords: tuple[str, ...]
    updated: datetime


def feed_days(session: Session, count: int = FEED_DATES) -> list[FeedDay]:
    """The last `count` complete listing dates, newest first, with their papers' count and age."""
    days = session.execute(
        select(ListingDay.listing_date, ListingDay.completed_at)
        .where(ListingDay.completed_at.is_not(None))
        .order_by(ListingDay.listing_date.desc())
        .limit(count)
    ).all()
    if not days:
        return []
    stats = {
        row.listing_date: (row.count, row.newest)
        for row in session.execute(
            select(
                Paper.listing_date,
                func.count().label("count"),
                func.max(Paper.updated_at).label("newest"),
            )
            .where(Paper.listing_date.in_([d.listing_date for d in days]))
            .group_by(Paper.listing_date)
        )
    }
    return [
        FeedDay(d.listing_date, d.completed_at, *stats.get(d.listing_date, (0, None))) for d in days
    ]


def last_modified(subscriber: Subscriber, days: list[FeedDay]) -> datetime:
    """The newest instant among the data the feed shows."""
    instants = [subscriber.updated_at]
    instants += [d.completed_at for d in days]
    instants += [d.newest_paper for d in days if d.newest_paper is not None]
    return max(instants)


def entity_tag(reader: Reader, subscriber: Subscriber, days: list[FeedDay]) -> str:
    """A strong ETag: changes with the days as stored, the reader's lines and settings."""
    state = [
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


class SectionCache:
    """Each (day as stored, reader)'s sections, least recently used dropped first."""

    def __init__(self, size: int = SECTIONS_KEPT):
        self.size = size
        self._kept: OrderedDict[tuple, Sections] = OrderedDict()

    def get(self, key: tuple) -> Sections | None:
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: tuple, sections: Sections) -> None:
        self._kept[key] = sections
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()


SECTIONS = SectionCache()


def day_sections(
    session: Session, config: Mapping, reader: Reader, days: list[FeedDay]
) -> dict[date, Sections]:
    """The reader's sections of each day, as the digest core decides them for that day's email.

    Only the day's own papers count: a late paper is in the feed under its own
    listing date, not under the digest that carried it.
    """
    database = str(session.get_bind().url)
    keys = {
        d.listing_date: (
            database,
            d.listing_date,
            d.completed_at,
            d.paper_count,
            d.newest_paper,
            reader.keywords,
            reader.include_replacements,
        )
        for d in days
    }
    found: dict[date, Sections] = {}
    missing = []
    for listing_date, key in keys.items():
        sections = SECTIONS.get(key)
        if sections is None:
            missing.append(listing_date)
        else:
            found[listing_date] = sections
    if missing:
        papers: dict[date, dict[str, Paper]] = {d: {} for d in missing}
        for paper in session.scalars(select(Paper).where(Paper.listing_date.in_(missing))):
            papers[paper.listing_date][paper.arxiv_id] = paper
        for listing_date in missing:
            day = DayDigest(listing_date, papers[listing_date], config)
            sections = day.sections({0: reader})[0]
            SECTIONS.put(keys[listing_date], sections)
            found[listing_date] = sections
    return found


def announced(listing_date: date, completed_at: datetime) -> datetime:
    """When the day was announced (UTC); its completion for a date arXiv's calendar lacks."""
    try:
        return calendar.announcement_instant(listing_date).astimezone(UTC)
    except ValueError:
        return completed_at


def feed_entries(
    session: Session, days: list[FeedDay], sections: Mapping[date, Sections]
) -> list[FeedEntry]:
    """One entry per matched paper, newest listing date first, in section order within a day."""
    lines: dict[str, list[str]] = {}
    when: dict[str, datetime] = {}
    for day in days:
        for keyword, ids in sections.get(day.listing_date, ()):
            for arxiv_id in ids:
                matched = lines.setdefault(arxiv_id, [])
                if keyword not in matched:
                    matched.append(keyword)
                when.setdefault(arxiv_id, announced(day.listing_date, day.completed_at))
    papers = load_papers(session, lines)
    return [
        FeedEntry(papers[arxiv_id], tuple(keywords), when[arxiv_id])
        for arxiv_id, keywords in lines.items()
        if arxiv_id in papers
    ]


def load_papers(session: Session, ids: Iterable[str]) -> dict[str, Paper]:
    """The papers with these arXiv ids."""
    wanted = sorted(ids)
    found: dict[str, Paper] = {}
    for start in range(0, len(wanted), _IN_BATCH):
        rows = session.scalars(
            select(Paper).where(Paper.arxiv_id.in_(wanted[start : start + _IN_BATCH]))
        )
        found.update((paper.arxiv_id, paper) for paper in rows)
    return found


def _text(text: str) -> str:
    return _NOT_XML.sub("", text)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, name: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{name}", attributes)
    if text is not None:
        element.text = _text(text)
    return element


def render_feed(
    entries: list[FeedEntry], self_url: str, base_url: str, public_id: str, updated: datetime
) -> bytes:
    """The Atom 1.0 document (RFC 4287); titles and abstracts as the email's text part shows them."""
    host = urlsplit(base_url).hostname or "localhost"
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "title", "arXiv digest: your matches")
    _add(
        feed,
        "subtitle",
        f"Papers your keyword lines matched on the last {FEED_DATES} listing dates.",
    )
    _add(feed, "id", f"tag:{host},{TAG_DATE}:feed:{public_id}")
    _add(feed, "updated", _stamp(updated))
    _add(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    _add(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/")
    _add(_add(feed, "author"), "name", "arXiv digest")
    _add(feed, "generator", "arXiv digest newsletter")
    for entry in entries:
        paper = entry.paper
        item = _add(feed, "entry")
        _add(item, "id", f"tag:{host},{TAG_DATE}:arxiv:{paper.arxiv_id}v{paper.version}")
        _add(item, "title", readable(paper.title), type="text")
        _add(item, "updated", _stamp(entry.updated))
        abs_url = f"https://arxiv.org/abs/{paper.arxiv_id}"
        _add(item, "link", rel="alternate", type="text/html", href=abs_url)
        pdf_url = f"https://arxiv.org/pdf/{paper.arxiv_id}"
        _add(item, "link", rel="related", type="application/pdf", title="PDF", href=pdf_url)
        for name in paper.authors:
            _add(_add(item, "author"), "name", name)
        for keyword in entry.keywords:
            _add(item, "category", term=_text(keyword))
        _add(item, "summary", readable(paper.abstract), type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def load_feed_subscriber(token: str) -> Subscriber:
    """The subscriber a valid feed token names, if their feed is served; else 404."""
    public_id = read_token(current_app.config["SECRET_KEY"], "feed", token)
    if not isinstance(public_id, str):
        abort(404, description=NOT_VALID)
    subscriber = db.session().scalar(select(Subscriber).where(Subscriber.public_id == public_id))
    if subscriber is None or subscriber.status not in SERVED:
        abort(404, description="This feed is not available any more.")
    return subscriber


@bp.get("/feed/<token>")
def show(token: str):
    subscriber = load_feed_subscriber(token)
    session = db.session()
    reader = Reader.of(subscriber)
    days = feed_days(session)
    etag = entity_tag(reader, subscriber, days)
    modified = last_modified(subscriber, days)
    headers = {"Cache-Control": "private, no-cache"}
    if not is_resource_modified(request.environ, etag=etag, last_modified=modified):
        response = Response(status=304, headers=headers)
    else:
        sections = day_sections(session, current_app.config, reader, days)
        # The URL as requested: a fresh token would change the body, not the data.
        base_url = current_app.config["BASE_URL"]
        body = render_feed(
            feed_entries(session, days, sections),
            f"{base_url}/feed/{token}",
            base_url,
            subscriber.public_id,
            modified,
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
    return feed_url(current_app.config, subscriber.public_id)
