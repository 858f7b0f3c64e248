"""A listing date's digest pieces: rendered once, assembled per subscriber.

Used by worker/digest/core.py (`DayDigest`), which owns one `DayFragments` per
listing date. Every paper's entries (full, title-only, "above" pointer) are
rendered once per language variant from the macros in
emails/templates/digest/parts.{html,txt}, with holes where subscribers
differ: the highlighted title and abstract, the matched keywords, the
entry's number, links. Highlighting is worked out once per (paper, matched
keyword lines) from the paper's words, tokenized once per day.
A paper of an earlier listing date than the day's (a late paper, see
worker/digest/core.py) is rendered with its "listed <date>, arrived late" mark.
A keyword line's own pieces (heading, links, footer, "matched:") are
worker/digest/keyword_pieces.py's (in its bounded `KeywordCache`); the
papers' highlightable texts are worker/digest/paper_texts.py's, and what
surrounds the entries (skeletons, subject, notes) worker/digest/chrome.py's.

Caches are per day and bounded: per paper and variant (a day has ~1,500
papers, 4 variants), and LRUs of fixed size for what depends on keyword lines
(highlights, headings, "matched:" lines). Nothing grows with subscribers.
Each cached piece is one str object, reused by every digest that shows it,
with its UTF-8 size, so a digest's HTML size is a sum, not an encode.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import NamedTuple

from markupsafe import Markup

import emails
from newsletter.languages import TargetLanguage
from newsletter.locales import ENGLISH
from newsletter.models import Paper, Translation
from worker.digest.chrome import DigestChrome
from worker.digest.entries import (
    Listing,
    finished_translation,
    listed_note,
    make_entry,
)
from worker.digest.keyword_pieces import KeywordCache, KeywordPieces
from worker.digest.layout import estimate_full_entry, estimate_short_entry, title_weight
from worker.digest.links import linked_html, linked_text
from worker.digest.paper_texts import PaperTexts
from worker.digest.pieces import LRU, Sized
from worker.digest.text import wrap_text

# Sizes chosen on benchmarks/render.py (100,000 readers, 30,000 distinct lines)
# and benchmarks/scale.py (a worker's peak RSS at 100k, beside its QP cache):
# at 16,000 entries each the highlight and keyword caches held ~90 MB of a
# worker's ~410 MB. Full entries with their highlighted title and abstract
# filled in, per (paper, matched lines): up to ~3 KB each (a text without any
# <mark> is the paper's own escaped text, not a copy); ~1.1 KB each on
# average. 24,000 rather than 12,000 (render.py, zipf, 50,000 readers): 4.1
# misses per digest instead of 5.6 (~25 µs each where they happen) for ~13 MB.
HIGHLIGHT_CACHE = 24_000
# Keyword lines whose pieces are kept: ~2 KB each. 12,000 rather than 6,000
# (render.py, zipf, 50,000 readers): ~0.025 ms less per digest for ~14 MB.
KEYWORD_CACHE = 12_000
# Other small pieces: "matched:" lists of several lines, headers, "N more" notes.
SMALL_CACHE = 10_000

# The markup around one TL;DR line in an entry (emails/templates/digest/parts.html).
_TLDR_HTML = 120


class FullEntry(NamedTuple):
    """A paper's full entry for one set of matched lines, in HTML and text."""

    html: tuple[str, ...]  # the entry's segments, highlights and "matched:" in place
    html_size: int  # UTF-8 bytes
    text_head: str  # the text entry up to its number (which differs between digests)
    text_tail: tuple[str, str, str]  # after the number, "Matched:" in place


class ShortEntry(NamedTuple):
    """What a shortened entry's holes take for one set of matched lines."""

    title: Sized  # highlighted
    matched_html: Sized
    matched_text: str


class DayFragments:
    """The rendered pieces of one listing date's digests, shared by all its digests."""

    def __init__(
        self,
        papers: Mapping[str, Paper],
        target: TargetLanguage,
        translations: Callable[[], dict[str, Translation]],
        listing_date: date | None = None,
        tldrs: Callable[[], dict[tuple[str, str], str]] | None = None,
        *,
        locale: str = ENGLISH,
    ):
        self.papers = papers
        # Papers listed before it are late papers, marked with their own date.
        self.listing_date = listing_date
        self.target = target
        self._translations = translations
        # (arXiv id, language) -> the paper version's TL;DR, for readers who ticked it.
        self._tldrs = tldrs or dict
        # The chrome's language (headings, labels, notes): newsletter/locales.py.
        self.locale = locale
        self._locales: dict[str, DayFragments] = {}
        # In other chrome than English, the papers' English text is marked as such.
        english = Markup(' lang="en"' if locale != ENGLISH else "")
        self.html = emails.macros("digest/parts.html", locale, linked=linked_html, english=english)
        self.text = emails.macros("digest/parts.txt", locale, wrap=wrap_text, linked=linked_text)
        self._listings: dict[tuple[bool, ...], dict[str, Listing]] = {}
        # Per paper: its title and abstract tokenized and escaped, once per day.
        self._texts = PaperTexts()
        self._full = LRU(HIGHLIGHT_CACHE)
        self._small = LRU(SMALL_CACHE)
        self._keywords = KeywordCache(self.html, self.text, KEYWORD_CACHE, self._small)
        # What surrounds the entries: skeletons, subject, header line, notes.
        self.chrome = DigestChrome(self.html, self.text, locale, self._small)

    def in_locale(self, locale: str) -> "DayFragments":
        """The day's pieces with their chrome in `locale`, made on first use.

        Its own rendered pieces and caches; the papers' tokenized texts are shared.
        """
        if locale == self.locale:
            return self
        found = self._locales.get(locale)
        if found is None:
            found = DayFragments(
                self.papers,
                self.target,
                self._translations,
                self.listing_date,
                self._tldrs,
                locale=locale,
            )
            found._texts = self._texts
            self._locales[locale] = found
        return found

    # --- per paper and variant ---

    def entries(
        self, bilingual: bool, full_page: bool, ids: Iterable[str], tldr: bool = False
    ) -> dict[str, Listing]:
        """The listings of these papers in this variant, made on first use."""
        variant = (bilingual, full_page, True) if tldr else (bilingual, full_page)
        known = self._listings.setdefault(variant, {})
        found = {}
        for arxiv_id in ids:
            listing = known.get(arxiv_id)
            if listing is None:
                listing = known[arxiv_id] = self._listing(arxiv_id, bilingual, full_page, tldr)
            found[arxiv_id] = listing
        return found

    def _listing(self, arxiv_id: str, bilingual: bool, full_page: bool, tldr: bool) -> Listing:
        paper = self.papers[arxiv_id]
        translation = finished_translation(paper, self._translations()) if bilingual else None
        target = self.target if bilingual else None
        listed = listed_note(paper, self.listing_date, self.locale)
        tldrs = self._tldr_texts(arxiv_id, bilingual) if tldr else (None, None)
        entry = make_entry(paper, full_page, target, translation, listed, tldrs, self.locale)
        short = (entry.title, entry.short_authors, entry.short_abstract)
        translated = (entry.translated_title or "", entry.short_translated_abstract or "")
        # TL;DRs show in full and short entries: each its text and a line of markup.
        extra = sum(len(text.encode()) + _TLDR_HTML for text in tldrs if text)
        return Listing(
            entry,
            estimate_full_entry(paper, translation) + extra,
            estimate_short_entry(*short, *translated) + extra,
            title_weight(entry.title),
            self.html,
            self.text,
        )

    def _tldr_texts(self, arxiv_id: str, bilingual: bool) -> tuple[str | None, str | None]:
        """The paper's English TL;DR and, in a bilingual digest, its translated one."""
        found = self._tldrs()
        second = found.get((arxiv_id, self.target.code)) if bilingual else None
        return found.get((arxiv_id, "en")), second

    # --- per paper and keyword lines ---

    def full_entry(self, listing: Listing, lines: tuple[str, ...]) -> FullEntry:
        """The listing's full entry with what `lines` (the reader's, in order) matched filled in.

        The same segments for every reader whose lines match this paper alike:
        a digest appends them as they are.
        """
        key = (listing, lines)
        # LRU.find inlined: this runs for every full entry of every digest.
        cached = self._full.entries
        found = cached.get(key)
        if found is not None:
            cached.move_to_end(key)
        else:
            found = self._full_entry(listing, lines)
            self._full.put(key, found)
        return found

    def _full_entry(self, listing: Listing, lines: tuple[str, ...]) -> FullEntry:
        title, abstract = self._texts.highlighted(listing.entry, lines)
        matched_html, matched_text = self.matched(lines)
        html, text = listing.full_html, listing.full_text.parts
        return FullEntry(
            (html.parts[0], title.text, html.parts[1], matched_html.text, html.parts[2])
            + (abstract.text, html.parts[3]),
            html.size + title.size + matched_html.size + abstract.size,
            text[0],
            (text[1], matched_text, text[2]),
        )

    def short_entry(self, listing: Listing, lines: tuple[str, ...]) -> ShortEntry:
        """The listing's shortened entry with its title highlighted for `lines` (cached as full ones)."""
        key = ("short", listing, lines)
        cached = self._full.entries
        found = cached.get(key)
        if found is not None:
            cached.move_to_end(key)
        else:
            title = self._texts.highlighted(listing.entry, lines, title_only=True)[0]
            matched_html, matched_text = self.matched(lines)
            found = ShortEntry(title, matched_html, matched_text)
            self._full.put(key, found)
        return found

    def keyword(self, keyword: str) -> KeywordPieces:
        return self._keywords.pieces(keyword)

    def matched(self, lines: tuple[str, ...]) -> tuple[Sized, str]:
        """ "matched:" of an entry, in HTML and text."""
        return self._keywords.matched(lines)
