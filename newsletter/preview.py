"""Keyword preview: what each keyword line would have matched on the last listing dates.

Called by the sign-up and manage views (newsletter/subscriptions.py: the form's
"Preview" button re-renders the page, storing nothing) and by its own endpoint
`GET /preview.js?keywords=...` (blueprint `bp`): a script that newsletter/static/preview.js
adds as the reader types, carrying the same HTML fragment (_preview.html).

The decision is the digest's: per listing date, `DayDigest.sections` (worker/digest/core.py,
which calls `match_papers`) for a Reader with the typed lines, so the preview
and the email never disagree. What is ours is the speed (~1,500 papers a day,
5 days, 20 lines, as the reader types). Each of the last PREVIEW_DAYS complete
listing dates is loaded once per process, with a word index (words of title and
abstract, category, author-name words -> a bitset of the day's papers). A line's
candidates are the papers holding every word its phrases, cat: and au: need:
a superset of its matches, since `match_papers` decides each paper on its own
text, so `DayDigest.sections` over the candidates gives exactly the whole
day's section. Only a line's candidates are matched (and tokenized, by
matching's own LRU), one line at a time, and each line's section is kept per
day (SECTIONS_PER_DAY), so typing one more line matches only that line.

The cache lives in `app.extensions` (one per process) and holds at most
PREVIEW_DAYS days; a day is rebuilt when its key changes: completed_at, its
paper count and latest updated_at (a late paper, a newer version). A newly
completed day replaces the oldest. Memory (benchmarks/preview.py, tracemalloc):
~11 MiB per day of 1,500 papers (6 MiB of detached Paper rows, 5.6 MiB of
word, category and author bitsets), so ~55 MiB per web process for the 5 days,
plus the lines' sections (SECTIONS_PER_DAY). Building a day tokenizes its
papers once (~0.3 s idle for 1,500): the first preview after a start or a
newly completed day pays it.
"""

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from flask import Blueprint, current_app, render_template, request
from jinja2.utils import htmlsafe_json_dumps
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import db, forms, ratelimit
from newsletter.config import Settings, settings
from newsletter.models import ListingDay, Paper
from worker.digest.core import DayDigest, Reader
from worker.digest.matching import Query, parse_keyword, tokenize
from worker.digest.tex import tex_to_text

bp = Blueprint("preview", __name__)

PREVIEW_DAYS = 5  # listing dates shown per line
SAMPLES = 3  # titles shown per line
# Lines' sections kept per day, the most recently asked: a typical line's ids take
# ~200 bytes (1,000 lines: ~0.2 MiB a day); a line matching a whole 1,500-paper
# day ~12 KiB, so at worst ~12 MiB a day.
SECTIONS_PER_DAY = 1000
# The textarea's maxlength; a longer text is refused before any parsing.
MAX_TEXT = 4000

DayKey = tuple  # (completed_at, paper count, latest updated_at)


@dataclass(frozen=True)
class LinePreview:
    line: str
    counts: tuple[tuple[date, int], ...]  # newest listing date first
    samples: tuple[tuple[str, str], ...]  # (arXiv id, readable title)


@dataclass(frozen=True)
class Preview:
    dates: tuple[date, ...]  # newest first; empty when no day is stored
    lines: tuple[LinePreview, ...]


class DayIndex:
    """One listing date's papers (detached rows) and their word bitsets."""

    def __init__(self, listing_date: date, key: DayKey, papers: list[Paper]):
        self.listing_date = listing_date
        self.key = key
        self.ids = [paper.arxiv_id for paper in papers]
        self.papers = {paper.arxiv_id: paper for paper in papers}
        self.everything = (1 << len(papers)) - 1
        words: dict[str, int] = defaultdict(int)
        categories: dict[str, int] = defaultdict(int)
        author_words: dict[str, int] = defaultdict(int)
        for n, paper in enumerate(papers):
            bit = 1 << n
            for word in {w for w, _, _ in tokenize(paper.title) + tokenize(paper.abstract)}:
                words[word] |= bit
            for category in paper.categories:  # as match_papers reads them
                categories[category.lower()] |= bit
                categories[category.lower().split(".")[0]] |= bit
            for word in {w for name in paper.authors for w, _, _ in tokenize(name)}:
                author_words[word] |= bit
        self.words = dict(words)
        self.categories = dict(categories)
        self.author_words = dict(author_words)
        # (line, include_replacements) -> the line's section on this day, most recent last.
        self._sections: OrderedDict[tuple[str, bool], tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def section(self, line: str, include_replacements: bool, config: Settings) -> tuple[str, ...]:
        """The line's papers on this day, as the digest shows them: `DayDigest.sections`.

        Asked of the line's candidates alone, one line at a time, so a cat: or au:
        line never has texts tokenized, and a phrase only its candidates'.
        """
        key = (line, include_replacements)
        with self._lock:
            if key in self._sections:
                self._sections.move_to_end(key)
                return self._sections[key]
        bits = self.candidates(parse_keyword(line))
        reader = Reader((line,), "en", "UTC", include_replacements)
        found = DayDigest(self.listing_date, self.papers_in(bits), config).sections({0: reader})[0]
        ids = tuple(found[0][1]) if found else ()
        with self._lock:
            self._sections[key] = ids
            while len(self._sections) > SECTIONS_PER_DAY:
                self._sections.popitem(last=False)
        return ids

    def candidates(self, query: Query) -> int:
        """A bitset of the papers that may match `query`: all it requires is there."""
        found = self.everything
        for phrase in query.phrases:
            found &= _any(
                _all(self.words, variant, self.everything) for variant in phrase.variants()
            )
        for category in query.categories:
            found &= self.categories.get(category, 0)
        for author in query.authors:
            found &= _all(self.author_words, author, self.everything)
        return found

    def papers_in(self, bits: int) -> dict[str, Paper]:
        digits = bin(bits)[:1:-1]  # lowest bit first
        return {self.ids[n]: self.papers[self.ids[n]] for n, c in enumerate(digits) if c == "1"}


def _all(index: Mapping[str, int], words: Iterable[str], everything: int) -> int:
    found = everything
    for word in words:
        found &= index.get(word, 0)
    return found


def _any(bitsets: Iterable[int]) -> int:
    found = 0
    for bits in bitsets:
        found |= bits
    return found


class DayCache:
    """The last PREVIEW_DAYS complete listing dates' indexes, one per process."""

    def __init__(self) -> None:
        self._days: dict[date, DayIndex] = {}
        self._lock = threading.Lock()

    def days(self, session: Session) -> list[DayIndex]:
        """The current days, newest first; changed or new ones (re)built."""
        wanted = day_keys(session, PREVIEW_DAYS)
        with self._lock:  # one build at a time; others wait rather than build twice
            kept = {d: self._days[d] for d in wanted if d in self._days}
            for listing_date, key in wanted.items():
                if listing_date not in kept or kept[listing_date].key != key:
                    kept[listing_date] = load_index(session, listing_date, key)
            self._days = kept
            return [kept[d] for d in wanted]


def day_keys(session: Session, count: int) -> dict[date, DayKey]:
    """The last `count` complete listing dates, newest first, each with its cache key."""
    completed = session.execute(
        select(ListingDay.listing_date, ListingDay.completed_at)
        .where(ListingDay.completed_at.is_not(None))
        .order_by(ListingDay.listing_date.desc())
        .limit(count)
    ).all()
    stats = {
        row[0]: (row[1], row[2])
        for row in session.execute(
            select(Paper.listing_date, func.count(Paper.id), func.max(Paper.updated_at))
            .where(Paper.listing_date.in_([d for d, _ in completed]))
            .group_by(Paper.listing_date)
        )
    }
    return {d: (done, *stats.get(d, (0, None))) for d, done in completed}


def load_index(session: Session, listing_date: date, key: DayKey) -> DayIndex:
    papers = list(session.scalars(select(Paper).where(Paper.listing_date == listing_date)))
    for paper in papers:
        # Kept across requests: detached, with every column already loaded.
        session.expunge(paper)
    return DayIndex(listing_date, key, papers)


def preview_days(days: list[DayIndex], reader: Reader, config: Settings) -> Preview:
    """Each of the reader's lines: its papers per day (as the digest shows them), and samples."""
    per_day = [
        (
            day,
            {
                line: day.section(line, reader.include_replacements, config)
                for line in reader.keywords
            },
        )
        for day in days
    ]
    lines = []
    for line in reader.keywords:
        counts = tuple((day.listing_date, len(found.get(line, ()))) for day, found in per_day)
        samples = [
            (arxiv_id, tex_to_text(day.papers[arxiv_id].title))
            for day, found in per_day
            for arxiv_id in found.get(line, ())[:SAMPLES]
        ][:SAMPLES]
        lines.append(LinePreview(line, counts, tuple(samples)))
    return Preview(tuple(day.listing_date for day in days), tuple(lines))


def previewable_lines(raw: str) -> tuple[list[str], str | None]:
    """The lines to preview and the form's keyword error (None when all are good).

    The error is the sign-up form's own (forms.clean_keywords); the good lines
    of a text with some bad ones are still previewed, unless the text is
    oversized (too long, too many lines), which previews nothing.
    """
    if len(raw) > MAX_TEXT:
        return [], f"Your keywords are too long: at most {MAX_TEXT} characters, please."
    keywords, error = forms.clean_keywords(raw)
    if keywords is not None:
        return keywords, None
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) > forms.MAX_KEYWORDS:
        return [], error
    good: dict[str, str] = {}
    for line in lines:
        cleaned, problem = forms.clean_keywords(line)
        if cleaned and not problem:
            good.setdefault(cleaned[0].casefold(), cleaned[0])
    return list(good.values()), error


def form_values(form, offered_languages: Iterable[str]) -> dict:
    """Every field of the form as typed, for the page shown again with the preview."""
    settings = forms.read_settings(form, list(offered_languages))
    return {
        **settings.values,
        "keywords_text": form.get("keywords", "")[:5000],
        "email": form.get("email", "")[:300],
        "timezone": settings.values["timezone"] or form.get("timezone", "")[:64],
    }


def form_preview(form) -> tuple[str | None, Preview | None]:
    """(the keyword error or None, the preview or None) for a sign-up or manage form."""
    lines, error = previewable_lines(form.get("keywords", ""))
    if not lines:
        return error, None
    reader = Reader(
        keywords=tuple(lines),
        language="en",  # neither counts: the sections depend on lines and replacements only
        timezone="UTC",
        include_replacements=form.get("include_replacements") == "on",
    )
    days = day_cache().days(db.session())
    return error, preview_days(days, reader, settings())


def day_cache() -> DayCache:
    extensions = current_app.extensions
    if "preview_days" not in extensions:
        extensions["preview_days"] = DayCache()
    return extensions["preview_days"]


def refused() -> int | None:
    """Count one preview for the client's IP: None, or seconds to wait."""
    return ratelimit.attempt(
        f"preview-ip:{request.remote_addr or 'unknown'}",
        settings().PREVIEW_LIMIT_PER_IP,
    )


@bp.get("/preview.js")
def preview_script():
    """The preview of ?keywords= as a script that hands the fragment to static/preview.js.

    A script, not fetch(): the site's CSP (newsletter/web.py) has no
    connect-src, and script-src 'self' lets preview.js add a <script src> here.
    A GET, as it changes nothing; what it shows is public (arXiv's papers).
    The fragment is the one the Preview button renders (_preview.html).
    """
    headers = {"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-store"}
    answer = request.args.get("n", "")
    number = int(answer) if answer.isascii() and answer.isdigit() and len(answer) < 10 else 0
    if refused():
        html = render_template("_preview.html", refused=True)
    elif not request.args.get("keywords", "").strip():
        html = ""
    else:
        error, shown = form_preview(request.args)
        html = render_template("_preview.html", preview=shown, line_errors=error)
    call = (
        f"window.keywordPreview && window.keywordPreview({number}, {htmlsafe_json_dumps(html)});\n"
    )
    return call, 200, headers
