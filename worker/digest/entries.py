"""One paper as the digest shows it: title, authors, subjects, abstract, translation, highlights.

Used by worker/digest/fragments.py, once per paper and language variant per
listing date (pure; no I/O past the bundled category names). Owns the
`PaperEntry` the entry macros (emails/templates/digest/parts.*) receive, its
rendered pieces (`Listing`), which translation of a paper may be shown, and
the highlighting of matched words. What differs between subscribers (highlights, "matched:") is not
here: it fills the holes of the rendered entry.
"""

import json
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property, lru_cache
from itertools import accumulate
from pathlib import Path
from typing import NamedTuple

from markupsafe import escape

from newsletter.languages import TargetLanguage
from newsletter.models import AnnounceType, Paper, Translation, TranslationStatus
from worker.digest.highlight import TextTokens, merge_tokens, phrase_tokens
from worker.digest.links import CLOSE_TAG, link_spans, open_tag
from worker.digest.pieces import Fragment, Sized, fragment, hole, sized
from worker.digest.tex import tex_to_text
from worker.digest.text import limit_lines

CATEGORIES_PATH = Path(__file__).resolve().parents[2] / "emails" / "data" / "categories.json"

# Authors shown in the email before "et al." (the web page shows all).
MAX_AUTHORS = 10
# A shortened entry (worker/digest/layout.py): its authors, and its abstract
# cut near this many characters (a Chinese character says about as much as an
# English word).
SHORT_AUTHORS = 3
SHORT_ABSTRACT = 280
SHORT_TRANSLATION = 100

_BADGES = {
    AnnounceType.CROSS: "cross-list",
    AnnounceType.REPLACE: "replacement",
    AnnounceType.REPLACE_CROSS: "replacement, cross-list",
}
_MARK = '<mark style="background:#fff3a3">'
_MARK_BYTES = len(_MARK) + len("</mark>")


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
    html_url: str  # arXiv's HTML rendering of the paper
    authors: str
    subjects: str
    badge: str | None
    abstract: str
    comments: str | None
    journal_ref: str | None
    doi: str | None
    doi_url: str | None
    language: str  # the translation's code, for lang="..."
    # A full entry shortened to fit the email's budget shows these.
    short_authors: str
    short_abstract: str
    translated_title: str | None = None
    translated_abstract: str | None = None
    translation_note: str | None = None
    short_translated_abstract: str | None = None
    # Set on a paper of an earlier listing date that came after that day's
    # digests (a late paper, worker/digest/core.py): "listed Thu 26 Nov, arrived late".
    listed: str | None = None


def listed_note(paper: Paper, listing_date: date | None) -> str | None:
    """The mark of a paper listed before the digest's `listing_date` (a late paper), else None."""
    listed = paper.listing_date
    if listing_date is None or listed is None or listed >= listing_date:
        return None
    return f"listed {listed:%a} {listed.day} {listed:%b}, arrived late"


def make_entry(
    paper: Paper,
    full_page: bool,
    target: TargetLanguage | None,
    translation: Translation | None,
    listed: str | None = None,
) -> PaperEntry:
    """The paper's entry; `target` is the second language of a bilingual digest, else None.

    `listed` marks a late paper (see `listed_note`).
    """
    authors = list(paper.authors)
    if not full_page and len(authors) > MAX_AUTHORS:
        authors = authors[:MAX_AUTHORS] + [f"et al. ({len(paper.authors)} authors)"]
    names = category_names()
    abstract = readable(paper.abstract)
    doi = paper.doi.split()[0] if paper.doi and paper.doi.strip() else None
    translated = {}
    if target is not None and translation is not None:
        translated_abstract = readable(translation.abstract)
        translated = {
            "translated_title": readable(translation.title),
            "translated_abstract": translated_abstract,
            "short_translated_abstract": cut_text(translated_abstract, SHORT_TRANSLATION),
        }
    elif target is not None:
        translated = {"translation_note": f"{target.short_name} translation not available today."}
    return PaperEntry(
        arxiv_id=paper.arxiv_id,
        anchor=f"p-{paper.arxiv_id}",
        title=readable(paper.title),
        abs_url=f"https://arxiv.org/abs/{paper.arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{paper.arxiv_id}",
        html_url=f"https://arxiv.org/html/{paper.arxiv_id}",
        authors=", ".join(authors),
        subjects="; ".join(f"{names[c]} ({c})" if c in names else c for c in paper.categories),
        badge=_BADGES.get(paper.announce_type),
        abstract=abstract,
        comments=_clean(paper.comments),
        journal_ref=_clean(paper.journal_ref),
        doi=doi,
        doi_url=f"https://doi.org/{doi}" if doi else None,
        language=target.code if target is not None else "en",
        short_authors=", ".join(paper.authors[:SHORT_AUTHORS])
        + (" et al." if len(paper.authors) > SHORT_AUTHORS else ""),
        short_abstract=cut_text(abstract, SHORT_ABSTRACT),
        listed=listed,
        **translated,
    )


class Listing:
    """One paper in one variant: its entry, size estimates and rendered pieces (made on first use)."""

    def __init__(
        self, entry: PaperEntry, weight: int, short_weight: int, title_weight: int, html, text
    ):
        self.entry = entry
        self.arxiv_id = entry.arxiv_id
        # The full entry's, the short one's and the title line's, for the byte
        # budget (worker/digest/layout.py).
        self.weight = weight
        self.short_weight = short_weight
        self.title_weight = title_weight
        self._html = html
        self._text = text

    @cached_property
    def full_html(self) -> Fragment:
        rendered = self._html.full_entry(
            self.entry, hole("title_html"), hole("matched"), hole("abstract_html")
        )
        return fragment(rendered, holes=("title_html", "matched", "abstract_html"))

    @cached_property
    def full_text(self) -> Fragment:
        rendered = self._text.full_entry(self.entry, hole("number"), hole("matched"))
        return fragment(rendered, text_part=True, holes=("number", "matched"))

    @cached_property
    def short_html(self) -> Fragment:
        rendered = self._html.short_entry(
            self.entry, hole("title_html"), hole("matched"), hole("page")
        )
        return fragment(rendered, holes=("title_html", "matched", "page"))

    @cached_property
    def short_text(self) -> Fragment:
        rendered = self._text.short_entry(self.entry, hole("number"), hole("matched"), hole("page"))
        return fragment(rendered, text_part=True, holes=("number", "matched", "page"))

    @cached_property
    def title_html(self) -> Sized:
        """An item of a title list (worker/digest/assembly.py opens and closes the list)."""
        return sized(str(self._html.title_entry(self.entry)))

    @cached_property
    def above_html(self) -> Fragment:
        rendered = self._html.above_entry(self.entry, hole("page"), hole("first_keyword"))
        return fragment(rendered, holes=("page", "first_keyword"))

    @cached_property
    def title_text(self) -> str:
        return limit_lines(str(self._text.title_entry(self.entry)))

    @cached_property
    def above_text(self) -> Fragment:
        """Above a full entry listed elsewhere (the web page)."""
        rendered = self._text.above_entry(self.entry, hole("first_keyword"), None)
        return fragment(rendered, text_part=True, holes=("first_keyword",))

    @cached_property
    def numbered_above_text(self) -> Fragment:
        """Above a full entry in this message."""
        rendered = self._text.above_entry(self.entry, hole("first_keyword"), hole("number"))
        return fragment(rendered, text_part=True, holes=("first_keyword", "number"))


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


class EscapedText(NamedTuple):
    """A title or abstract HTML-escaped once, with where each of its words starts and ends."""

    html: str
    size: int  # UTF-8 bytes
    starts: Sequence[int]  # per token of TextTokens, offsets in `html`
    ends: Sequence[int]
    # Tags put into the text (the links of "this https URL"), as (start, end)
    # offsets in `html`: no <mark> may cross one.
    tags: tuple[tuple[int, int], ...] = ()


# What markupsafe.escape adds per character it replaces.
_ESCAPE_EXTRA = {"&": 4, "<": 3, ">": 3, '"': 4, "'": 4}


def escaped_text(text: str, tokens: TextTokens, url: str | None = None) -> EscapedText:
    """`text` escaped, with its tokens' offsets mapped into the escaped text.

    With `url`, arXiv's "this https URL" in the text is a link to it.
    """
    spans = link_spans(text) if url else []
    html = str(escape(text))
    if not spans and len(html) == len(text):
        return EscapedText(html, len(html.encode()), tokens.starts, tokens.ends)
    # Escaping replaces characters one by one: offsets shift by what came before.
    shifted = list(accumulate((1 + _ESCAPE_EXTRA.get(ch, 0) for ch in text), initial=0))
    if spans and url:
        return _linked_text(text, tokens, url, spans, shifted)
    return EscapedText(
        html,
        len(html.encode()),
        array("l", (shifted[i] for i in tokens.starts)),
        array("l", (shifted[i] for i in tokens.ends)),
    )


def _linked_text(
    text: str, tokens: TextTokens, url: str, spans: list[tuple[int, int]], shifted: list[int]
) -> EscapedText:
    """`text` escaped with each span a link to `url`; token offsets moved past the tags."""
    opening = open_tag(url)
    # (position in text, order, tag): a link closes before the next opens at the same place.
    events = sorted([(end, 0, CLOSE_TAG) for _, end in spans] + [(s, 1, opening) for s, _ in spans])
    positions = [position for position, _, _ in events]
    added = list(accumulate((len(tag) for _, _, tag in events), initial=0))
    parts: list[str] = []
    tags: list[tuple[int, int]] = []
    previous = 0
    for n, (position, _, tag) in enumerate(events):
        parts += (str(escape(text[previous:position])), tag)
        start = shifted[position] + added[n]
        tags.append((start, start + len(tag)))
        previous = position
    parts.append(str(escape(text[previous:])))
    html = "".join(parts)
    # A word starts after the tags at its first character, and ends before those after it.
    return EscapedText(
        html,
        len(html.encode()),
        array("l", (shifted[i] + added[bisect_right(positions, i)] for i in tokens.starts)),
        array("l", (shifted[i] + added[bisect_left(positions, i)] for i in tokens.ends)),
        tuple(tags),
    )


def highlight(
    text: EscapedText, tokens: TextTokens, variants: list[tuple[str, ...]]
) -> tuple[str, int]:
    """The escaped text with where `variants` occur (see worker.digest.highlight) in <mark>, and its size.

    Without any, the escaped text itself (the same object for every digest).
    """
    found = merge_tokens(phrase_tokens(tokens, variants)) if variants else ()
    if not found:
        return text.html, text.size
    html = text.html
    parts: list[str] = []
    position = 0
    marks = 0
    for start, end in _marked(text, found):
        parts += (html[position:start], _MARK, html[start:end], "</mark>")
        position = end
        marks += 1
    parts.append(html[position:])
    return "".join(parts), text.size + marks * _MARK_BYTES


def _marked(text: EscapedText, found) -> Iterator[tuple[int, int]]:
    """Where each <mark> goes in text.html: a match split where a link's tag is inside it."""
    for first, last in found:
        start, end = text.starts[first], text.ends[last]
        for tag_start, tag_end in text.tags:
            if start <= tag_start and tag_end <= end:
                if tag_start > start:
                    yield start, tag_start
                start = tag_end
        if end > start:
            yield start, end


def cut_text(text: str, limit: int) -> str:
    """`text` cut near `limit` characters at a space (any character in CJK text), with "…"."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut < limit * 2 // 3:  # no space near the end: CJK, or one long word
        cut = limit
    return text[:cut].rstrip(" ,;:.，、；：") + "…"


def _clean(value: str | None) -> str | None:
    return (readable(value) if value else "") or None


# A day's papers recur in thousands of digests, and the day's fragments are
# rebuilt by each worker process: convert each text once per process.
@lru_cache(maxsize=16384)
def readable(text: str) -> str:
    """TeX turned into Unicode text, whitespace collapsed."""
    return " ".join(tex_to_text(text).split())
