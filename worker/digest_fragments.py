"""A listing date's digest pieces: rendered once, assembled per subscriber.

Used by worker/digest.py (`DayDigest`), which owns one `DayFragments` per
listing date. Every paper's entries (full, title-only, "above" pointer) are
rendered once per language variant from the macros in
emails/templates/digest/parts.{html,txt}, with holes where subscribers
differ: the highlighted title and abstract, the matched keywords, the
entry's number, links. Highlighting is worked out once per (paper, matched
keyword lines) from the paper's words, tokenized once per day.

Caches are per day and bounded: per paper and variant (a day has ~1,500
papers, 4 variants), and LRUs of fixed size for what depends on keyword lines
(highlights, headings, "matched:" lines). Nothing grows with subscribers.
Each cached piece is one str object, reused by every digest that shows it,
with its UTF-8 size, so a digest's HTML size is a sum, not an encode.
"""

import re
import secrets
from collections.abc import Callable, Mapping
from typing import NamedTuple

from markupsafe import Markup, escape

import emails
from newsletter.languages import TargetLanguage
from newsletter.models import Paper, Translation
from worker.digest_entries import PaperEntry, finished_translation, highlight, make_entry
from worker.digest_layout import estimate_full_entry
from worker.digest_text import limit_lines, wrap_text
from worker.matching import TextTokens, line_variants, text_tokens

# Highlighted (title, abstract) pairs kept per day: ~3 KB each, so ~60 MB at most.
HIGHLIGHT_CACHE = 20_000
# Headings, "matched:" lines, escaped keywords: a few hundred bytes each.
SMALL_CACHE = 20_000

# A marker per hole, made once per process: no arXiv text can contain it.
_TOKEN = secrets.token_hex(12)
_HOLES = re.compile(f"\x00{_TOKEN}:(\\w+)\x00")


def hole(name: str) -> Markup:
    """The marker a macro renders where `name` is filled in per subscriber."""
    return Markup(f"\x00{_TOKEN}:{name}\x00")


class Fragment(NamedTuple):
    """Rendered text with holes: static text, hole name, static text, ... static text."""

    parts: tuple[str, ...]
    size: int  # UTF-8 bytes of the static text


def fragment(rendered: str, text_part: bool = False) -> Fragment:
    """`rendered` split at its holes; the text part's lines are kept within RFC 5322's limit."""
    parts = _HOLES.split(str(rendered))
    if text_part:
        # Holes only ever sit inside short lines, so limiting each piece limits the message.
        parts[::2] = [limit_lines(part) for part in parts[::2]]
    return Fragment(tuple(parts), sum(len(part.encode()) for part in parts[::2]))


def fill(out: list[str], piece: Fragment, values: Mapping[str, "Sized"]) -> int:
    """Append `piece` with its holes filled to `out`; return the UTF-8 bytes appended."""
    parts = piece.parts
    size = piece.size
    if parts[0]:
        out.append(parts[0])
    for index in range(1, len(parts), 2):
        text, nbytes = values[parts[index]]
        if text:
            out.append(text)
        size += nbytes
        if parts[index + 1]:
            out.append(parts[index + 1])
    return size


class Sized(NamedTuple):
    text: str
    size: int  # UTF-8 bytes


def sized(text: str) -> Sized:
    return Sized(text, len(text.encode()))


NOTHING = Sized("", 0)


class LRU(dict):
    """A dict that forgets its least recently used keys past `limit`."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def get_or_make(self, key, make: Callable[[], object]):
        value = self.pop(key, self)
        if value is self:
            value = make()
            if len(self) >= self.limit:
                del self[next(iter(self))]
        self[key] = value
        return value


class DayFragments:
    """The rendered pieces of one listing date's digests, shared by all its digests."""

    def __init__(
        self,
        papers: Mapping[str, Paper],
        target: TargetLanguage,
        translations: Callable[[], dict[str, Translation]],
    ):
        self.papers = papers
        self.target = target
        self._translations = translations
        self.html = emails.macros("digest/parts.html")
        self.text = emails.macros("digest/parts.txt", wrap=wrap_text)
        self._entries: dict[tuple[str, bool, bool], PaperEntry] = {}
        self._pieces: dict[tuple, Fragment | str] = {}
        self._tokens: dict[str, tuple[TextTokens, TextTokens]] = {}
        self._highlights = LRU(HIGHLIGHT_CACHE)
        self._small = LRU(SMALL_CACHE)

    # --- per paper and variant ---

    def entry(self, arxiv_id: str, bilingual: bool, full_page: bool) -> PaperEntry:
        """The paper as shown in full in this variant (with its size estimate)."""
        key = (arxiv_id, bilingual, full_page)
        entry = self._entries.get(key)
        if entry is None:
            paper = self.papers[arxiv_id]
            translation = finished_translation(paper, self._translations()) if bilingual else None
            entry = make_entry(
                paper,
                estimate_full_entry(paper, translation),
                full_page,
                self.target if bilingual else None,
                translation,
            )
            self._entries[key] = entry
        return entry

    def full_html(self, entry: PaperEntry) -> Fragment:
        """Holes: title_html, matched, abstract_html."""
        key = ("full.html", id(entry))
        piece = self._pieces.get(key)
        if piece is None:
            rendered = self.html.full_entry(
                entry, hole("title_html"), hole("matched"), hole("abstract_html")
            )
            piece = self._pieces[key] = fragment(rendered)
        return piece

    def full_text(self, entry: PaperEntry) -> Fragment:
        """Holes: number, matched."""
        key = ("full.txt", id(entry))
        piece = self._pieces.get(key)
        if piece is None:
            rendered = self.text.full_entry(entry, hole("number"), hole("matched"))
            piece = self._pieces[key] = fragment(rendered, text_part=True)
        return piece

    def title_html(self, entry: PaperEntry) -> Fragment:
        """Holes: page."""
        key = ("title.html", entry.arxiv_id)
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._pieces[key] = fragment(self.html.title_entry(entry, hole("page")))
        return piece

    def above_html(self, entry: PaperEntry) -> Fragment:
        """Holes: page, first_keyword."""
        key = ("above.html", entry.arxiv_id)
        piece = self._pieces.get(key)
        if piece is None:
            rendered = self.html.above_entry(entry, hole("page"), hole("first_keyword"))
            piece = self._pieces[key] = fragment(rendered)
        return piece

    def title_text(self, entry: PaperEntry) -> str:
        key = ("title.txt", entry.arxiv_id)
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._pieces[key] = limit_lines(str(self.text.title_entry(entry)))
        return piece

    def above_text(self, entry: PaperEntry, numbered: bool) -> Fragment:
        """Holes: first_keyword, and number if `numbered`."""
        key = ("above.txt", entry.arxiv_id, numbered)
        piece = self._pieces.get(key)
        if piece is None:
            number = hole("number") if numbered else None
            rendered = self.text.above_entry(entry, hole("first_keyword"), number)
            piece = self._pieces[key] = fragment(rendered, text_part=True)
        return piece

    # --- per paper and keyword lines ---

    def highlighted(self, entry: PaperEntry, lines: tuple[str, ...]) -> tuple[Sized, Sized]:
        """The entry's title and abstract as HTML, with what `lines` matched marked."""
        key = (entry.arxiv_id, lines if len(lines) == 1 else tuple(sorted(set(lines))))
        return self._highlights.get_or_make(key, lambda: self._highlight(entry, key[1]))

    def _highlight(self, entry: PaperEntry, lines: tuple[str, ...]) -> tuple[Sized, Sized]:
        tokens = self._tokens.get(entry.arxiv_id)
        if tokens is None:
            tokens = self._tokens[entry.arxiv_id] = (
                text_tokens(entry.title),
                text_tokens(entry.abstract),
            )
        variants = [variant for line in lines for variant in line_variants(line)]
        return (
            sized(highlight(entry.title, tokens[0], variants)),
            sized(highlight(entry.abstract, tokens[1], variants)),
        )

    def matched_html(self, lines: tuple[str, ...]) -> Sized:
        return self._small.get_or_make(
            ("matched.html", lines), lambda: sized(str(escape(", ".join(lines))))
        )

    def matched_text(self, lines: tuple[str, ...]) -> Sized:
        return self._small.get_or_make(
            ("matched.txt", lines), lambda: Sized(str(self.text.matched_line(lines)), 0)
        )

    def keyword_html(self, keyword: str) -> Sized:
        return self._small.get_or_make(
            ("keyword.html", keyword), lambda: sized(str(escape(keyword)))
        )

    # --- per digest and section ---

    def skeleton(self, listing_date: str) -> Fragment:
        """body.mjml with holes for the header, entries and footer (rendered once)."""
        names = ("paper_count", "papers_word", "subject_keywords", "summary", "entries", "footer")
        return self._small.get_or_make(
            ("skeleton", listing_date),
            lambda: fragment(
                emails.render_template(
                    "digest/body.mjml",
                    listing_date=listing_date,
                    **{name: hole(name) for name in names},
                )
            ),
        )

    def heading_html(self, anchor: str, keyword: str, count: int) -> Sized:
        return self._small.get_or_make(
            ("heading.html", anchor, keyword, count),
            lambda: sized(str(self.html.section_heading(anchor, keyword, count))),
        )

    def heading_text(self, keyword: str, count: int) -> str:
        return self._small.get_or_make(
            ("heading.txt", keyword, count),
            lambda: limit_lines(str(self.text.section_heading(keyword, count))),
        )

    def hidden_html(self, anchor: str, hidden: int, keyword: str) -> Fragment:
        """Holes: view_url."""
        return self._small.get_or_make(
            ("hidden.html", anchor, hidden, keyword),
            lambda: fragment(self.html.hidden_note(hole("view_url"), anchor, hidden, keyword)),
        )

    def section_end_text(self, anchor: str, hidden: int) -> Fragment:
        """Holes: view_url (if any papers are hidden)."""
        return self._small.get_or_make(
            ("end.txt", anchor, hidden),
            lambda: fragment(
                self.text.section_end(hole("view_url"), anchor, hidden), text_part=True
            ),
        )
