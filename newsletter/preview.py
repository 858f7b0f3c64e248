"""Keyword preview: what each keyword line would have matched on the last listing dates.

Called by the sign-up and manage views (newsletter/subscriptions.py: the form's
"Preview" button re-renders the page, storing nothing) and by its own endpoint
`GET /preview.js?keywords=...` (blueprint `bp`): a script that newsletter/static/preview.js
adds as the reader types, carrying the same HTML fragment (_preview.html).

The decision is the digest's: per listing date, `DayDigest.sections` (worker/digest/core.py,
which calls `match_papers`) for a Reader with the typed lines, so the preview
and the email never disagree. The speed is newsletter/preview_index.py's: each
day's papers and word index, kept per process.

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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from flask import Blueprint, current_app, render_template, request
from flask_babel import gettext as _
from jinja2.utils import htmlsafe_json_dumps

from newsletter import db, forms, ratelimit
from newsletter.config import Settings, settings
from newsletter.preview_index import DayCache, DayIndex
from worker.digest.core import Reader
from worker.digest.tex import tex_to_text

bp = Blueprint("preview", __name__)

SAMPLES = 3  # titles shown per line
# The textarea's maxlength; a longer text is refused before any parsing.
MAX_TEXT = 4000


@dataclass(frozen=True)
class LinePreview:
    line: str
    counts: tuple[tuple[date, int], ...]  # newest listing date first
    samples: tuple[tuple[str, str], ...]  # (arXiv id, readable title)


@dataclass(frozen=True)
class Preview:
    dates: tuple[date, ...]  # newest first; empty when no day is stored
    lines: tuple[LinePreview, ...]


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
        return [], _(
            "Your keywords are too long: at most %(most)s characters, please.", most=MAX_TEXT
        )
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
