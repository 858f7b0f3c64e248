"""The daily digest's content: which papers go where, and the rendered email.

Called by the delivery jobs (worker/delivery.py), `newsletter digest preview`
and the "view in browser" page (newsletter/digests.py). `load_day` is the one
database read; `assign_sections`, `render_digest` and `personalize` are pure.

Subscribers whose digests would be identical (same keywords, language,
timezone and sections) share one render made with `PLACEHOLDER_LINKS`;
`personalize` then puts each subscriber's own links in.

Size: Gmail clips HTML past 102 KB, so the email shows at most
`max_per_keyword` papers in full per keyword and keeps the whole HTML under
`HTML_BUDGET` bytes by turning further entries into title-only lines, then
into a count with a link to the full digest page (which has no limits).
"""

import json
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import RenderedEmail, render
from newsletter.models import AnnounceType, Paper, Translation, TranslationStatus
from worker.calendar import announcement_instant
from worker.matching import highlight_spans
from worker.tex import tex_to_text

CATEGORIES_PATH = Path(__file__).resolve().parent.parent / "emails" / "data" / "categories.json"

# Gmail clips at 102 KB; leave room for what mail clients and DKIM add.
HTML_BUDGET = 95_000
# Authors shown in the email before "et al." (the web page shows all).
MAX_AUTHORS = 10
# Characters per line in the text part (RFC 5322 allows 998 octets, we aim for readability).
TEXT_WIDTH = 76
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
_BADGES = {
    AnnounceType.CROSS: "cross-list",
    AnnounceType.REPLACE: "replacement",
    AnnounceType.REPLACE_CROSS: "replacement, cross-list",
}
_ALWAYS_INCLUDED = (AnnounceType.NEW, AnnounceType.CROSS)
# Target languages the digest knows how to label; adding one is a line here.
LANGUAGE_NAMES = {"zh": "Chinese"}


def load_day(session: Session, listing_date: date) -> dict[str, Paper]:
    """The papers announced for `listing_date`, by arXiv id."""
    papers = session.scalars(select(Paper).where(Paper.listing_date == listing_date))
    return {paper.arxiv_id: paper for paper in papers}


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


# --- rendering ---------------------------------------------------------------


@cache
def category_names() -> dict[str, str]:
    """arXiv category code -> name, e.g. "cs.LG" -> "Machine Learning"."""
    return json.loads(CATEGORIES_PATH.read_text(encoding="utf-8"))["categories"]


@dataclass
class _Entry:
    """One paper as the templates show it; the details are filled only for full entries."""

    arxiv_id: str
    anchor: str
    title: str
    abs_url: str
    matched: list[str]
    # A rough size of the full HTML entry, for the byte budget.
    weight: int
    # Where the full entry is: "#p-ID" in this message, or the web page.
    full_url: str = ""
    title_html: Markup = Markup("")
    authors: str = ""
    subjects: str = ""
    pdf_url: str = ""
    badge: str | None = None
    abstract: str = ""
    abstract_html: Markup = Markup("")
    comments: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    doi_url: str | None = None
    translated_title: str | None = None
    translated_abstract: str | None = None
    translation_note: str | None = None


@dataclass
class _Item:
    """A line of a section: the full entry, its title only, or a pointer to it above."""

    kind: str  # full | title | above
    entry: _Entry
    first_keyword: str = ""


@dataclass
class _Section:
    keyword: str
    anchor: str
    count: int
    items: list[_Item] = field(default_factory=list)
    # Papers of this section not listed at all (past the byte budget).
    hidden: int = 0


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
    zone = _zone(timezone)
    bilingual = language == f"en+{target_language}"
    full_page = max_per_keyword is None
    matched: dict[str, list[str]] = {}
    for keyword, ids in sections:
        for arxiv_id in ids:
            matched.setdefault(arxiv_id, []).append(keyword)
    entries = {
        arxiv_id: _entry(papers[arxiv_id], keywords_matched, bilingual, translations)
        for arxiv_id, keywords_matched in matched.items()
    }
    plan = _plan(sections, entries, max_per_keyword)
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
    if not full_page and _FIXED_HTML + _weight(plan) > HTML_BUDGET:
        _shrink(plan, HTML_BUDGET - _FIXED_HTML - 1_000)
    # Only full entries need their details (most of the work); demotions later keep them.
    for section in plan:
        for item in section.items:
            if item.kind == "full":
                _fill(
                    item.entry,
                    papers[item.entry.arxiv_id],
                    bilingual,
                    translations,
                    target_language,
                    full_page,
                )
    rendered = render("digest", **_values(sections=plan, **context))
    if not full_page:
        # Estimates are rough: cut by the measured overshoot, scaled from bytes
        # to estimate units, until it fits (usually zero or one more round).
        for _ in range(8):
            size = len(rendered.html.encode())
            if size <= HTML_BUDGET:
                break
            weight = _weight(plan)
            scale = weight / max(size - _FIXED_HTML, 1)
            _shrink(plan, weight - (size - HTML_BUDGET + 1_000) * scale)
            rendered = render("digest", **_values(sections=plan, **context))
    return RenderedEmail(
        subject=rendered.subject, text=_limit_lines(rendered.text), html=rendered.html
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return ZoneInfo("UTC")


def _entry(
    paper: Paper,
    keywords_matched: list[str],
    bilingual: bool,
    translations: dict[str, Translation] | None,
) -> _Entry:
    """The entry with what every listing needs, and the estimated size of its full form."""
    translation = _translation(paper, translations) if bilingual else None
    raw = (
        paper.title,
        paper.abstract,
        paper.comments or "",
        paper.journal_ref or "",
        paper.doi or "",
        ", ".join(paper.authors[: MAX_AUTHORS + 1]),
        translation.title if translation else "",
        translation.abstract if translation else "",
    )
    return _Entry(
        arxiv_id=paper.arxiv_id,
        anchor=f"p-{paper.arxiv_id}",
        title=_readable(paper.title),
        abs_url=f"https://arxiv.org/abs/{paper.arxiv_id}",
        matched=keywords_matched,
        weight=_ENTRY_HTML + 45 * len(paper.categories) + sum(len(s.encode()) for s in raw),
    )


def _translation(paper: Paper, translations: dict[str, Translation] | None) -> Translation | None:
    """The finished translation of this very version of the paper, if any."""
    translation = (translations or {}).get(paper.arxiv_id)
    if (
        translation is not None
        and translation.status == TranslationStatus.DONE
        and translation.version == paper.version
        and translation.title
        and translation.abstract
    ):
        return translation
    return None


def _fill(
    entry: _Entry,
    paper: Paper,
    bilingual: bool,
    translations: dict[str, Translation] | None,
    target_language: str,
    full_page: bool,
) -> None:
    """Add what a full entry shows: authors, subjects, abstract, highlights, translation."""
    keywords = tuple(entry.matched)
    authors = list(paper.authors)
    if not full_page and len(authors) > MAX_AUTHORS:
        authors = authors[:MAX_AUTHORS] + [f"et al. ({len(paper.authors)} authors)"]
    names = category_names()
    doi = paper.doi.split()[0] if paper.doi and paper.doi.strip() else None
    entry.title_html = _highlight(entry.title, keywords)
    entry.authors = ", ".join(authors)
    entry.subjects = "; ".join(f"{names[c]} ({c})" if c in names else c for c in paper.categories)
    entry.pdf_url = f"https://arxiv.org/pdf/{paper.arxiv_id}"
    entry.badge = _BADGES.get(paper.announce_type)
    entry.abstract = _readable(paper.abstract)
    entry.abstract_html = _highlight(entry.abstract, keywords)
    entry.comments = _clean(paper.comments)
    entry.journal_ref = _clean(paper.journal_ref)
    entry.doi = doi
    entry.doi_url = f"https://doi.org/{doi}" if doi else None
    if bilingual:
        translation = _translation(paper, translations)
        if translation is not None:
            entry.translated_title = _readable(translation.title)
            entry.translated_abstract = _readable(translation.abstract)
        else:
            language_name = LANGUAGE_NAMES.get(target_language, target_language)
            entry.translation_note = f"{language_name} translation not available today."


def _clean(value: str | None) -> str | None:
    return (_readable(value) if value else "") or None


# A day's papers recur in thousands of digests: convert and highlight each
# text once per process (the functions are pure, so caching is safe).
@lru_cache(maxsize=16384)
def _readable(text: str) -> str:
    return " ".join(tex_to_text(text).split())


@lru_cache(maxsize=8192)
def _highlight(text: str, keyword_lines: tuple[str, ...]) -> Markup:
    """`text` escaped, with the spans the keywords matched wrapped in <mark>."""
    parts: list[str] = []
    position = 0
    for start, end in sorted(highlight_spans(text, keyword_lines)):
        if start < position or end <= start:
            continue
        parts.append(str(escape(text[position:start])))
        parts.append(f'<mark style="background:#fff3a3">{escape(text[start:end])}</mark>')
        position = end
    parts.append(str(escape(text[position:])))
    return Markup("".join(parts))


def _plan(
    sections: list[tuple[str, list[str]]], entries: dict[str, _Entry], max_per_keyword: int | None
) -> list[_Section]:
    """Sections with each paper in full once (first keyword), later as a pointer."""
    plan = []
    first_keyword: dict[str, str] = {}
    for position, (keyword, ids) in enumerate(sections, start=1):
        section = _Section(keyword=keyword, anchor=f"k-{position}", count=len(ids))
        shown_in_full = 0
        for arxiv_id in ids:
            entry = entries[arxiv_id]
            if arxiv_id in first_keyword:
                section.items.append(_Item("above", entry, first_keyword[arxiv_id]))
                continue
            first_keyword[arxiv_id] = keyword
            if max_per_keyword is None or shown_in_full < max_per_keyword:
                section.items.append(_Item("full", entry))
                shown_in_full += 1
            else:
                section.items.append(_Item("title", entry))
        plan.append(section)
    return plan


# Bytes of HTML around the content, measured on the sample digest: per full
# entry, per title-only line (plus its title), and for a digest with no papers.
_ENTRY_HTML = 500
_TITLE_WEIGHT = 250
_FIXED_HTML = 8_000


def _weight(plan: list[_Section]) -> float:
    return sum(
        item.entry.weight if item.kind == "full" else _TITLE_WEIGHT + len(item.entry.title.encode())
        for section in plan
        for item in section.items
    )


def _shrink(plan: list[_Section], budget: float) -> None:
    """Cut listings until their estimated weight fits `budget`.

    Cut first what the digest page has anyway and the reader loses least:
    pointers to papers listed elsewhere, then title-only lines (both from the
    end), then full entries, always from the section that has the most, so
    every keyword keeps some. What is cut is counted per section and linked.
    """
    total = _weight(plan)
    for kind in ("above", "title"):
        for section in reversed(plan):
            for index in range(len(section.items) - 1, -1, -1):
                if total <= budget:
                    return
                item = section.items[index]
                if item.kind == kind:
                    total -= _TITLE_WEIGHT + len(item.entry.title.encode())
                    del section.items[index]
                    section.hidden += 1
    while total > budget:
        fullest = max(reversed(plan), key=lambda s: sum(item.kind == "full" for item in s.items))
        fulls = [index for index, item in enumerate(fullest.items) if item.kind == "full"]
        if not fulls:
            return
        total -= fullest.items[fulls[-1]].entry.weight
        del fullest.items[fulls[-1]]
        fullest.hidden += 1


def _values(
    *, listing_date, zone, timezone, generated_at, keywords, links, sections, paper_count, full_page
) -> dict:
    """Everything the three templates use."""
    try:
        announced = announcement_instant(listing_date)
    except ValueError:
        announced = None
    # Where a pointer leads: the full entry in this message, or on the web page.
    in_message = {
        item.entry.arxiv_id for section in sections for item in section.items if item.kind == "full"
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
            page = "" if entry.arxiv_id in in_message else links["view_url"]
            entry.full_url = f"{page}#{entry.anchor}"
    number = {
        item.entry.arxiv_id: n
        for n, item in enumerate(
            (item for section in sections for item in section.items if item.kind == "full"), start=1
        )
    }
    return {
        "listing_date": _day(listing_date),
        "announced_et": _instant(announced) if announced else None,
        "announced_local": _instant(announced.astimezone(zone)) if announced else None,
        "timezone": zone.key if zone.key == timezone else "UTC",
        "generated": _instant(generated_at.astimezone(zone)),
        "paper_count": paper_count,
        "full_count": len(number),
        "papers_word": "paper" if paper_count == 1 else "papers",
        "subject_keywords": _subject_keywords(sections),
        "keywords": keywords,
        "sections": sections,
        "number": number,
        "full_page": full_page,
        "links": links,
        "wrap": wrap_text,
    }


def _day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _instant(instant: datetime) -> str:
    return f"{_day(instant.date())}, {instant:%H:%M} {instant.tzname()}"


def _subject_keywords(sections: list[_Section]) -> str:
    parts = [f"{s.keyword} ({s.count})" for s in sections]
    shown: list[str] = []
    for n, part in enumerate(parts):
        if shown and len(", ".join(shown + [part])) > SUBJECT_MAX - 60:
            shown.append(f"+{len(parts) - n} more")
            break
        shown.append(part)
    return ", ".join(shown)


# --- text part ---------------------------------------------------------------


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


# Words up to this long (URLs) stay whole on a line of their own; longer ones are split.
_LONGEST_WORD = 200


@lru_cache(maxsize=16384)
def wrap_text(text: str, indent: str = "", width: int = TEXT_WIDTH) -> str:
    """`text` as lines of at most `width` columns (CJK counts double), each indented.

    Words and URLs are never split (unless absurdly long); CJK text, which
    has no spaces, breaks between any two characters.
    """
    tokens: list[str] = []
    word = ""
    for ch in text:
        if ch.isspace():
            if word:
                tokens.append(word)
            word = ""
            tokens.append(" ")
        elif _width(ch) == 2:
            if word:
                tokens.append(word)
            word = ""
            tokens.append(ch)
        else:
            word += ch
    if word:
        tokens.append(word)
    room = max(width - len(indent), 20)
    lines: list[str] = []
    line, used = "", 0
    for token in tokens:
        size = sum(_width(c) for c in token)
        if token == " ":
            if line:
                line, used = line + " ", used + 1
            continue
        if used + size > room and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        while size > _LONGEST_WORD:
            # A "word" no line can hold (hostile input): hard-split it.
            lines.append(token[:_LONGEST_WORD])
            token = token[_LONGEST_WORD:]
            size = sum(_width(c) for c in token)
        line, used = line + token, used + size
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(indent + line for line in lines)


def _limit_lines(text: str, limit: int = 998) -> str:
    """No line over `limit` characters, whatever the template or data did."""
    out = []
    for line in text.split("\n"):
        while len(line.encode()) > limit:
            cut = limit // 4  # characters; at most 4 bytes each in UTF-8
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\n".join(out)
