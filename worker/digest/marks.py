"""A title or abstract as HTML: escaped once, its links in place, matched words in <mark>.

Used by worker/digest/fragments.py: `escaped_text` once per paper's title and
abstract per day, then `highlight` per set of matched keyword lines (which
words match is worker/digest/highlight.py's). Offsets of every word are kept
through escaping and link tags, so marking is slicing, never re-escaping.
"""

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import NamedTuple

from markupsafe import escape

from worker.digest.highlight import TextTokens, merge_tokens, phrase_tokens
from worker.digest.links import CLOSE_TAG, link_spans, open_tag

_MARK = '<mark style="background:#fff3a3">'
_MARK_BYTES = len(_MARK) + len("</mark>")


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
    return mark_tokens(text, phrase_tokens(tokens, variants) if variants else [])


def mark_tokens(text: EscapedText, found: list[tuple[int, int]]) -> tuple[str, int]:
    """The escaped text with the (first, last) token ranges `found` (unmerged) in <mark>, and its size."""
    if not found:
        return text.html, text.size
    if len(found) > 1:
        found = merge_tokens(found)
    html = text.html
    parts: list[str] = []
    position = 0
    marks = 0
    if text.tags:
        spans: Iterable[tuple[int, int]] = _marked(text, found)
    else:
        starts, ends = text.starts, text.ends
        spans = [(starts[first], ends[last]) for first, last in found]
    for start, end in spans:
        if end > start:
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
