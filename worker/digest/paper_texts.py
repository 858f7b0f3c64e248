"""Each paper's title and abstract as highlightable HTML, made once per day (pure).

Used by worker/digest/fragments.py: `DayFragments` keeps one `PaperTexts` per
listing date (shared by its chrome's locales) and asks it for an entry's
title and abstract with what a reader's keyword lines matched in <mark>.
Tokenizing and escaping are done once per paper (worker/digest/highlight.py,
marks.py); a highlight is then a search of each line's needles in the words
and slices of the escaped text.
"""

from worker.digest.entries import PaperEntry
from worker.digest.highlight import Needle, TextTokens, line_needles, needle_tokens, text_tokens
from worker.digest.marks import EscapedText, escaped_text, mark_tokens
from worker.digest.pieces import NOTHING, Sized


class PaperTexts:
    """The day's titles and abstracts, tokenized and escaped on first use."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[tuple[TextTokens, EscapedText], ...]] = {}

    def highlighted(
        self, entry: PaperEntry, lines: tuple[str, ...], title_only: bool = False
    ) -> tuple[Sized, Sized]:
        """The entry's title and abstract as HTML, with what `lines` matched marked.

        With `title_only` the abstract is left as it is (a shortened entry shows its own cut).
        """
        texts = self._texts.get(entry.arxiv_id)
        if texts is None:
            title, abstract = text_tokens(entry.title), text_tokens(entry.abstract)
            texts = self._texts[entry.arxiv_id] = (
                (title, escaped_text(entry.title, title)),
                (abstract, escaped_text(entry.abstract, abstract, entry.abs_url)),
            )
        # Order and repeats of lines do not matter: what they find is merged.
        needles = line_needles(lines[0]) if len(lines) == 1 else _needles(lines)
        (title, title_html), (abstract, abstract_html) = texts
        marked_title = Sized(*mark_tokens(title_html, needle_tokens(title.stream, needles)))
        if title_only:
            return marked_title, NOTHING
        return marked_title, Sized(
            *mark_tokens(abstract_html, needle_tokens(abstract.stream, needles))
        )


def _needles(lines: tuple[str, ...]) -> tuple[Needle, ...]:
    return tuple(needle for line in lines for needle in line_needles(line))
