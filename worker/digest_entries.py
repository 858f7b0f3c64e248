"""One paper as the digest shows it: title, authors, subjects, abstract, translation, highlights.

Used by worker/digest_fragments.py, once per paper and language variant per
listing date (pure; no I/O past the bundled category names). Owns the
`PaperEntry` the entry macros (emails/templates/digest/parts.*) receive,
which translation of a paper may be shown, and the highlighting of matched
words. What differs between subscribers (highlights, "matched:") is not
here: it fills the holes of the rendered entry.
"""

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from markupsafe import escape

from newsletter.languages import TargetLanguage
from newsletter.models import AnnounceType, Paper, Translation, TranslationStatus
from worker.matching import TextTokens, merge_spans, phrase_spans
from worker.tex import tex_to_text

CATEGORIES_PATH = Path(__file__).resolve().parent.parent / "emails" / "data" / "categories.json"

# Authors shown in the email before "et al." (the web page shows all).
MAX_AUTHORS = 10

_BADGES = {
    AnnounceType.CROSS: "cross-list",
    AnnounceType.REPLACE: "replacement",
    AnnounceType.REPLACE_CROSS: "replacement, cross-list",
}
_MARK = '<mark style="background:#fff3a3">'


@cache
def category_names() -> dict[str, str]:
    """arXiv category code -> name, e.g. "cs.LG" -> "Machine Learning"."""
    return json.loads(CATEGORIES_PATH.read_text(encoding="utf-8"))["categories"]


@dataclass(frozen=True, eq=False)
class PaperEntry:
    """One paper as the entry macros show it, in one variant (English or bilingual, email or page)."""

    arxiv_id: str
    anchor: str
    title: str
    abs_url: str
    pdf_url: str
    authors: str
    subjects: str
    badge: str | None
    abstract: str
    comments: str | None
    journal_ref: str | None
    doi: str | None
    doi_url: str | None
    language: str  # the translation's code, for lang="..."
    translated_title: str | None = None
    translated_abstract: str | None = None
    translation_note: str | None = None


def make_entry(
    paper: Paper,
    full_page: bool,
    target: TargetLanguage | None,
    translation: Translation | None,
) -> PaperEntry:
    """The paper's entry; `target` is the second language of a bilingual digest, else None."""
    authors = list(paper.authors)
    if not full_page and len(authors) > MAX_AUTHORS:
        authors = authors[:MAX_AUTHORS] + [f"et al. ({len(paper.authors)} authors)"]
    names = category_names()
    doi = paper.doi.split()[0] if paper.doi and paper.doi.strip() else None
    translated = {}
    if target is not None and translation is not None:
        translated = {
            "translated_title": readable(translation.title),
            "translated_abstract": readable(translation.abstract),
        }
    elif target is not None:
        translated = {"translation_note": f"{target.short_name} translation not available today."}
    return PaperEntry(
        arxiv_id=paper.arxiv_id,
        anchor=f"p-{paper.arxiv_id}",
        title=readable(paper.title),
        abs_url=f"https://arxiv.org/abs/{paper.arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{paper.arxiv_id}",
        authors=", ".join(authors),
        subjects="; ".join(f"{names[c]} ({c})" if c in names else c for c in paper.categories),
        badge=_BADGES.get(paper.announce_type),
        abstract=readable(paper.abstract),
        comments=_clean(paper.comments),
        journal_ref=_clean(paper.journal_ref),
        doi=doi,
        doi_url=f"https://doi.org/{doi}" if doi else None,
        language=target.code if target is not None else "en",
        **translated,
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


def highlight(text: str, tokens: TextTokens, variants: list[tuple[str, ...]]) -> str:
    """`text` HTML-escaped, with where `variants` occur (see worker.matching) in <mark>."""
    spans = merge_spans(phrase_spans(tokens, variants)) if variants else ()
    parts: list[str] = []
    position = 0
    for start, end in spans:
        if start < position or end <= start:
            continue
        parts.append(escape(text[position:start]))
        parts.append(f"{_MARK}{escape(text[start:end])}</mark>")
        position = end
    parts.append(escape(text[position:]))
    return "".join(parts)


def _clean(value: str | None) -> str | None:
    return (readable(value) if value else "") or None


# A day's papers recur in thousands of digests, and the day's fragments are
# rebuilt by each worker process: convert each text once per process.
@lru_cache(maxsize=16384)
def readable(text: str) -> str:
    """TeX turned into Unicode text, whitespace collapsed."""
    return " ".join(tex_to_text(text).split())
