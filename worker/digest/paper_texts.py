"""Each paper's title and abstract as highlightable HTML, made once per day (pure).

Used by worker/digest/fragments.py: `DayFragments` keeps one `PaperTexts` per
listing date (shared by its chrome's locales) and asks it for an entry's
title and abstract with what a reader's keyword lines matched in <mark>.
Tokenizing and escaping are done once per paper (worker/digest/highlight.py,
marks.py); a highlight is then a search of each line's needles in the words
and slices of the escaped text.
"""

from typing import NamedTuple

from worker.digest.entries import PaperEntry
from worker.digest.highlight import (
    Needle,
    TextTokens,
    line_needles,
    line_search,
    search_tokens,
    text_tokens,
)
from worker.digest.marks import EscapedText, escaped_text, mark_tokens
from worker.digest.pieces import NOTHING, Sized


class PaperTexts:
    """The day's titles and abstracts, tokenized and escaped on first use."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[_Text, _Text]] = {}

    def highlighted(
        self, entry: PaperEntry, lines: tuple[str, ...], title_only: bool = False
    ) -> tuple[Sized, Sized]:
        """The entry's title and abstract as HTML, with what `lines` matched marked.

        With `title_only` the abstract is left as it is (a shortened entry shows its own cut).
        """
        texts = self._texts.get(entry.arxiv_id)
        if texts is None:
            texts = self._texts[entry.arxiv_id] = (
                _text(entry.title),
                _text(entry.abstract, entry.abs_url),
            )
        # Order and repeats of lines do not matter: what they find is merged.
        search = line_search(lines[0]) if len(lines) == 1 else ("", _needles(lines))
        title = _marked(texts[0], search)
        return (title, NOTHING) if title_only else (title, _marked(texts[1], search))


class _Text(NamedTuple):
    """A title or abstract made ready for highlighting."""

    tokens: TextTokens
    escaped: EscapedText
    plain: Sized  # the escaped text itself, what most highlights of a title come to


def _text(text: str, url: str | None = None) -> _Text:
    tokens = text_tokens(text)
    escaped = escaped_text(text, tokens, url)
    return _Text(tokens, escaped, Sized(escaped.html, escaped.size))


def _marked(text: _Text, search: tuple[str, tuple[Needle, ...]]) -> Sized:
    """The text with what `search` finds in <mark> (the same object as before where it finds nothing)."""
    found = search_tokens(text.tokens.stream, search)
    return Sized(*mark_tokens(text.escaped, found)) if found else text.plain


def _needles(lines: tuple[str, ...]) -> tuple[Needle, ...]:
    return tuple(needle for line in lines for needle in line_needles(line))
