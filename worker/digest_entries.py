"""One paper as the digest shows it: title, authors, subjects, highlighted abstract, translation.

Used by worker/digest.py while rendering (pure; no I/O past the bundled
category names). Owns the `Entry` the templates read, the TeX-to-text and
highlight caches, and which translation of a paper may be shown.
"""

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from markupsafe import Markup, escape

from newsletter.models import AnnounceType, Paper, Translation, TranslationStatus
from worker.matching import TextTokens, line_variants, merge_spans, phrase_spans, text_tokens
from worker.tex import tex_to_text

CATEGORIES_PATH = Path(__file__).resolve().parent.parent / "emails" / "data" / "categories.json"

# Authors shown in the email before "et al." (the web page shows all).
MAX_AUTHORS = 10
# Target languages the digest knows how to label; adding one is a line here.
LANGUAGE_NAMES = {"zh": "Chinese"}

_BADGES = {
    AnnounceType.CROSS: "cross-list",
    AnnounceType.REPLACE: "replacement",
    AnnounceType.REPLACE_CROSS: "replacement, cross-list",
}


@cache
def category_names() -> dict[str, str]:
    """arXiv category code -> name, e.g. "cs.LG" -> "Machine Learning"."""
    return json.loads(CATEGORIES_PATH.read_text(encoding="utf-8"))["categories"]


@dataclass
class Entry:
    """One paper as the templates show it; the details are filled only for full entries."""

    arxiv_id: str
    anchor: str
    title: str
    abs_url: str
    matched: list[str]
    # A rough size of the full HTML entry, for the byte budget (worker/digest_layout.py).
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


def make_entry(paper: Paper, keywords_matched: list[str], weight: int) -> Entry:
    """The entry with what every listing (full, title-only or pointer) needs."""
    return Entry(
        arxiv_id=paper.arxiv_id,
        anchor=f"p-{paper.arxiv_id}",
        title=_readable(paper.title),
        abs_url=f"https://arxiv.org/abs/{paper.arxiv_id}",
        matched=keywords_matched,
        weight=weight,
    )


def finished_translation(
    paper: Paper, translations: dict[str, Translation] | None
) -> Translation | None:
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


def fill_entry(
    entry: Entry,
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
        translation = finished_translation(paper, translations)
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


@lru_cache(maxsize=4096)
def _tokens(text: str) -> TextTokens:
    # Tokenized once per text, however many keyword lines highlight it.
    return text_tokens(text)


@lru_cache(maxsize=8192)
def _highlight(text: str, keyword_lines: tuple[str, ...]) -> Markup:
    """`text` escaped, with the spans the keywords matched wrapped in <mark>."""
    variants = [variant for line in keyword_lines for variant in line_variants(line)]
    spans = merge_spans(phrase_spans(_tokens(text), variants)) if variants else []
    parts: list[str] = []
    position = 0
    for start, end in spans:
        if start < position or end <= start:
            continue
        parts.append(str(escape(text[position:start])))
        parts.append(f'<mark style="background:#fff3a3">{escape(text[start:end])}</mark>')
        position = end
    parts.append(str(escape(text[position:])))
    return Markup("".join(parts))
