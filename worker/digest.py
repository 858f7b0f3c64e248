"""The daily digest's content: which papers go where, and the rendered email.

Called by the delivery jobs (worker/delivery.py), `newsletter digest preview`
and the "view in browser" page (newsletter/digests.py). `load_day` is the one
database read; `assign_sections`, `render_digest` and `personalize` are pure.
This module owns that public interface and the values the digest templates
(emails/templates/digest/) receive; the parts live beside it:
worker/digest_entries.py (one paper's entry), worker/digest_layout.py (full,
title-only or counted, within the HTML size budget) and worker/digest_text.py
(wrapping for the plain-text part).

`DayDigest` is the one digest core: every caller that needs "which papers
does this subscriber get on this day, and how are they shown" (dispatch,
sending, `digest preview`, the digest page, translation planning) asks it.
It is free of Flask: the session and settings are passed in.

Subscribers whose digests would be identical (same keywords, language,
timezone and sections) share one render made with `PLACEHOLDER_LINKS`;
`personalize` then puts each subscriber's own links in.
"""

import json
import logging
import secrets
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import RenderedEmail, render
from newsletter.languages import is_bilingual
from newsletter.models import AnnounceType, Paper, Subscriber, Translation, TranslationStatus
from worker.calendar import announcement_instant
from worker.digest_entries import Entry, fill_entry, finished_translation, make_entry
from worker.digest_layout import (
    HTML_BUDGET,
    Section,
    estimate_full_entry,
    fit_plan,
    plan_sections,
    refit_plan,
)
from worker.digest_text import limit_lines, wrap_text
from worker.matching import match_papers

log = logging.getLogger(__name__)

# Ids per IN (...) query, well under every backend's parameter limit.
_IN_BATCH = 500

# Subject lines stay readable; keywords past this many characters become "+N more".
SUBJECT_MAX = 150

# A random, URL-safe, escape-proof marker per link, made once per process: no
# arXiv text can contain it by chance or design, so `personalize` replaces only
# what the template put there.
_MARKER = secrets.token_hex(16)
PLACEHOLDER_LINKS: dict[str, str] = {
    name: f"https://placeholder.invalid/{_MARKER}/{name}"
    for name in ("manage_url", "unsubscribe_url", "one_click_url", "view_url")
}

_TYPE_ORDER = {
    AnnounceType.NEW: 0,
    AnnounceType.CROSS: 1,
    AnnounceType.REPLACE: 2,
    AnnounceType.REPLACE_CROSS: 3,
}
_ALWAYS_INCLUDED = (AnnounceType.NEW, AnnounceType.CROSS)


def load_day(session: Session, listing_date: date) -> dict[str, Paper]:
    """The papers announced for `listing_date`, by arXiv id."""
    papers = session.scalars(select(Paper).where(Paper.listing_date == listing_date))
    return {paper.arxiv_id: paper for paper in papers}


def load_translations(
    session: Session, papers: dict[str, Paper], language: str
) -> dict[str, Translation]:
    """The finished translations of exactly the versions in `papers`, by arXiv id."""
    wanted = {(p.arxiv_id, p.version) for p in papers.values()}
    ids = sorted(papers)
    found: dict[str, Translation] = {}
    for start in range(0, len(ids), _IN_BATCH):
        rows = session.scalars(
            select(Translation).where(
                Translation.arxiv_id.in_(ids[start : start + _IN_BATCH]),
                Translation.language == language,
                Translation.status == TranslationStatus.DONE,
            )
        )
        found.update({t.arxiv_id: t for t in rows if (t.arxiv_id, t.version) in wanted})
    return found


def assign_sections(
    keywords: list[str],
    matches: dict[str, frozenset[str]],
    papers: dict[str, Paper],
    include_replacements: bool,
) -> list[tuple[str, list[str]]]:
    """Each keyword with eligible matching papers, in the subscriber's order, with their ids."""
    sections = []
    for keyword in keywords:
        ids = [
            arxiv_id
            for arxiv_id in matches.get(keyword, frozenset())
            if arxiv_id in papers
            and (include_replacements or papers[arxiv_id].announce_type in _ALWAYS_INCLUDED)
        ]
        if ids:
            ids.sort(key=lambda i: (_TYPE_ORDER[papers[i].announce_type], i))
            sections.append((keyword, ids))
    return sections


def personalize(rendered: RenderedEmail, links: dict[str, str]) -> RenderedEmail:
    """`rendered` (made with PLACEHOLDER_LINKS) with this subscriber's links in."""
    text, html = rendered.text, rendered.html
    for name, placeholder in PLACEHOLDER_LINKS.items():
        if name in links:
            text = text.replace(placeholder, links[name])
            html = html.replace(placeholder, str(escape(links[name])))
    return RenderedEmail(subject=rendered.subject, text=text, html=html)


def render_digest(
    *,
    listing_date: date,
    sections: list[tuple[str, list[str]]],
    papers: dict[str, Paper],
    translations: dict[str, Translation] | None,
    language: str,
    timezone: str,
    keywords: list[str],
    generated_at: datetime,
    links: dict[str, str],
    max_per_keyword: int | None,
    target_language: str = "zh",
) -> RenderedEmail:
    """The digest email (subject, text, HTML); max_per_keyword None = the full web page."""
    zone = subscriber_zone(timezone)
    bilingual = language == f"en+{target_language}"
    full_page = max_per_keyword is None
    entries = _entries(sections, papers, bilingual, translations)
    plan = plan_sections(sections, entries, max_per_keyword)
    context = dict(
        listing_date=listing_date,
        zone=zone,
        timezone=timezone,
        generated_at=generated_at,
        keywords=keywords,
        links=links,
        paper_count=len(entries),
        full_page=full_page,
    )
    if not full_page:
        fit_plan(plan)
    # Only full entries need their details (most of the work); demotions later keep them.
    for section in plan:
        for item in section.items:
            if item.kind == "full":
                fill_entry(
                    item.entry,
                    papers[item.entry.arxiv_id],
                    bilingual,
                    translations,
                    target_language,
                    full_page,
                )
    rendered = render("digest", **_values(sections=plan, **context))
    if not full_page:
        # The size estimates are rough: cut by the measured overshoot until it
        # fits (usually zero or one more round).
        for _ in range(8):
            size = len(rendered.html.encode())
            if size <= HTML_BUDGET:
                break
            refit_plan(plan, size)
            rendered = render("digest", **_values(sections=plan, **context))
    return RenderedEmail(
        subject=rendered.subject, text=limit_lines(rendered.text), html=rendered.html
    )


def _entries(
    sections: list[tuple[str, list[str]]],
    papers: dict[str, Paper],
    bilingual: bool,
    translations: dict[str, Translation] | None,
) -> dict[str, Entry]:
    """Each listed paper's entry, with the keywords it matched and the size of its full form."""
    matched: dict[str, list[str]] = {}
    for keyword, ids in sections:
        for arxiv_id in ids:
            matched.setdefault(arxiv_id, []).append(keyword)
    entries = {}
    for arxiv_id, keywords_matched in matched.items():
        paper = papers[arxiv_id]
        translation = finished_translation(paper, translations) if bilingual else None
        entries[arxiv_id] = make_entry(
            paper, keywords_matched, estimate_full_entry(paper, translation)
        )
    return entries


def subscriber_zone(name: str) -> ZoneInfo:
    """The subscriber's timezone; UTC if the name is unknown (validated at sign-up)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        log.warning("unknown timezone %r; using UTC", name)
        return ZoneInfo("UTC")


def _values(
    *, listing_date, zone, timezone, generated_at, keywords, links, sections, paper_count, full_page
) -> dict:
    """Everything the three templates use."""
    try:
        announced = announcement_instant(listing_date)
    except ValueError:
        announced = None
    full_numbers = {
        item.entry.arxiv_id: n
        for n, item in enumerate(
            (item for section in sections for item in section.items if item.kind == "full"), start=1
        )
    }
    listed = {
        item.entry.arxiv_id
        for section in sections
        for item in section.items
        if item.kind != "above"
    }
    for section in sections:
        for item in section.items:
            entry = item.entry
            if item.kind == "above" and entry.arxiv_id not in listed:
                # Its first listing was cut for size: this line is now its listing.
                item.kind = "title"
            # Where a pointer leads: the full entry in this message, or on the web page.
            page = "" if entry.arxiv_id in full_numbers else links["view_url"]
            entry.full_url = f"{page}#{entry.anchor}"
    return {
        "listing_date": _day(listing_date),
        "announced_et": _instant(announced) if announced else None,
        "announced_local": _instant(announced.astimezone(zone)) if announced else None,
        "timezone": zone.key if zone.key == timezone else "UTC",
        "generated": _instant(generated_at.astimezone(zone)),
        "paper_count": paper_count,
        "full_count": len(full_numbers),
        "papers_word": "paper" if paper_count == 1 else "papers",
        "subject_keywords": _subject_keywords(sections),
        "keywords": keywords,
        "sections": sections,
        "number": full_numbers,
        "full_page": full_page,
        "links": links,
        "wrap": wrap_text,
    }


def _day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _instant(instant: datetime) -> str:
    return f"{_day(instant.date())}, {instant:%H:%M} {instant.tzname()}"


def _subject_keywords(sections: list[Section]) -> str:
    parts = [f"{s.keyword} ({s.count})" for s in sections]
    shown: list[str] = []
    for n, part in enumerate(parts):
        if shown and len(", ".join(shown + [part])) > SUBJECT_MAX - 60:
            shown.append(f"+{len(parts) - n} more")
            break
        shown.append(part)
    return ", ".join(shown)


# --- the digest core: one listing date's digests, for any caller ---

# (keyword, arXiv ids) in the subscriber's keyword order, as fixed at dispatch.
Sections = list[tuple[str, list[str]]]
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Reader:
    """What a digest needs to know of its subscriber."""

    keywords: tuple[str, ...]
    language: str
    timezone: str
    include_replacements: bool

    @classmethod
    def of(cls, subscriber: Subscriber) -> "Reader":
        return cls(
            keywords=tuple(subscriber.keyword_lines),
            language=subscriber.language,
            timezone=subscriber.timezone,
            include_replacements=subscriber.include_replacements,
        )


class DayDigest:
    """One listing date's digests: which papers each reader gets, rendered as email or page.

    The day's papers are read once; translations on first need; every
    distinct keyword line is matched once, however many readers share it.
    """

    def __init__(
        self,
        listing_date: date,
        papers: dict[str, Paper],
        config: Mapping,
        load_translations=None,
    ):
        self.listing_date = listing_date
        self.papers = papers
        self.max_per_keyword: int = config["DIGEST_MAX_PER_KEYWORD"]
        self.target_language: str = config["TRANSLATION_LANGUAGE"]
        self._load_translations = load_translations or (lambda papers, language: {})
        self._translations: dict[str, Translation] | None = None
        self._matches: dict[str, frozenset[str]] = {}
        self._shared: dict[tuple, RenderedEmail] = {}

    @classmethod
    def load(cls, session: Session, config: Mapping, listing_date: date) -> "DayDigest":
        """The day as stored; translations are read from `session` when first needed."""
        return cls(
            listing_date,
            load_day(session, listing_date),
            config,
            lambda papers, language: load_translations(session, papers, language),
        )

    @classmethod
    def from_rows(
        cls,
        listing_date: date,
        papers: dict[str, Paper],
        translations: dict[str, Translation],
        config: Mapping,
    ) -> "DayDigest":
        """A day from rows already in hand (tests, benchmarks)."""
        return cls(listing_date, papers, config, lambda _papers, _language: translations)

    def is_bilingual(self, reader: Reader) -> bool:
        return is_bilingual(reader.language, self.target_language)

    def translations(self) -> dict[str, Translation]:
        if self._translations is None:
            self._translations = self._load_translations(self.papers, self.target_language)
        return self._translations

    def match(self, lines: Iterable[str]) -> dict[str, frozenset[str]]:
        """Matches of every line given, each distinct line matched once per day."""
        new = sorted({line for line in lines if line not in self._matches})
        if new:
            found = match_papers(list(self.papers.values()), new) if self.papers else {}
            for line in new:
                self._matches[line] = found.get(line, frozenset())
        return self._matches

    def sections(self, readers: Mapping[Key, Reader]) -> dict[Key, Sections]:
        """Each reader's sections: keywords with their eligible papers, in the reader's order."""
        matches = self.match(line for reader in readers.values() for line in reader.keywords)
        return {
            key: assign_sections(
                list(reader.keywords), matches, self.papers, reader.include_replacements
            )
            for key, reader in readers.items()
        }

    def current(self, sections: Sections) -> Sections:
        """`sections` (maybe a row's stored JSON) without papers no longer on this day.

        A paper re-announced on a later date moves there.
        """
        kept = [(keyword, [i for i in ids if i in self.papers]) for keyword, ids in sections]
        return [(keyword, ids) for keyword, ids in kept if ids]

    def render_email(
        self, reader: Reader, sections: Sections, generated_at: datetime, links: dict[str, str]
    ) -> RenderedEmail:
        """The reader's digest email with their own `links`."""
        sections = self.current(sections)
        key = (reader, json.dumps(sections), generated_at)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._render(
                reader, sections, generated_at, PLACEHOLDER_LINKS, full_page=False
            )
            self._shared[key] = shared
        return personalize(shared, links)

    def render_page(
        self, reader: Reader, sections: Sections, generated_at: datetime, links: dict[str, str]
    ) -> str:
        """The reader's digest as the "view in browser" page: every paper in full."""
        return self._render(
            reader, self.current(sections), generated_at, links, full_page=True
        ).html

    def _render(
        self,
        reader: Reader,
        sections: Sections,
        generated_at: datetime,
        links: dict[str, str],
        full_page: bool,
    ) -> RenderedEmail:
        bilingual = self.is_bilingual(reader)
        return render_digest(
            listing_date=self.listing_date,
            sections=sections,
            papers=self.papers,
            translations=self.translations() if bilingual else None,
            language=reader.language,
            timezone=reader.timezone,
            keywords=list(reader.keywords),
            generated_at=generated_at,
            links=links,
            max_per_keyword=None if full_page else self.max_per_keyword,
            target_language=self.target_language,
        )
