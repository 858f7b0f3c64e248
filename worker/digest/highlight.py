"""Which words of a title or abstract a reader's keyword lines highlight (pure, no I/O).

Run by the digest renderer (worker/digest/paper_texts.py, marks.py):
`text_tokens` once per title or abstract, then `search_tokens` with a line's
`line_search` (or `needle_tokens` with several lines' needles) per keyword
line; `phrase_spans`, `phrase_tokens` and `highlight_spans` (one text) do the
same from word variants. The keyword syntax and the tokenizer are
worker/digest/matching.py's.
"""

import functools
import os
import re
import sys
from array import array
from collections.abc import Iterable
from typing import NamedTuple

from worker.digest.matching import (
    MAX_LINE_LENGTH,
    KeywordError,
    Phrase,
    Token,
    parse_keyword,
    tokenize,
)

# Between the words of TextTokens.stream; no folded word contains it (_SCAN's
# words are letters, digits and accents).
_SEP = "\x01"


class TextTokens(NamedTuple):
    """A text's words with their spans, made once per text for highlighting.

    Compact on purpose: a day's 3,000 titles and abstracts stay a few MB. The
    words are one string, so finding a phrase is one `str.find` (in C), not a
    scan of the words in Python.
    """

    stream: str  # "\x01" + the folded words joined by "\x01" + "\x01"; "" where a phrase ends
    starts: "array[int]"  # where each word starts, TeX braces trimmed (quoted: 3.11's array is not generic)
    ends: "array[int]"


def text_tokens(text: str) -> TextTokens:
    """`text` tokenized once, for any number of `phrase_spans` calls."""
    tokens = tokenize(text)
    starts, ends = array("l"), array("l")
    for token in tokens:
        _, start, end = token
        # Most words have no TeX brace to trim: no slicing then.
        starts.append(_start(text, token) if text.startswith("{", start) else start)
        ends.append(_end(text, token) if text.endswith("}", start, end) else end)
    return TextTokens(_SEP + _SEP.join(word for word, _, _ in tokens) + _SEP, starts, ends)


@functools.lru_cache(maxsize=65536)  # a day has ~30,000 distinct lines; each is tiny
def line_variants(line: str) -> tuple[tuple[str, ...], ...]:
    """The word sequences a line highlights: its phrases and their plurals.

    Exclusions, cat: and au: are not highlighted; neither is a line that does not parse.
    """
    try:
        query = parse_keyword(line)
    except KeywordError:
        return ()
    found = dict.fromkeys(variant for phrase in query.phrases for variant in phrase.variants())
    return tuple(tuple(sys.intern(word) for word in variant) for variant in found)


def phrase_spans(tokens: TextTokens, variants: Iterable[tuple[str, ...]]) -> list[tuple[int, int]]:
    """Every (start, end) where one of `variants` occurs in the text, unmerged."""
    return [(tokens.starts[i], tokens.ends[j]) for i, j in phrase_tokens(tokens, variants)]


def phrase_tokens(tokens: TextTokens, variants: Iterable[tuple[str, ...]]) -> list[tuple[int, int]]:
    """Every (first, last) token index where one of `variants` occurs, unmerged."""
    return needle_tokens(tokens.stream, variant_needles(variants))


# What a search looks for: a variant as it stands in TextTokens.stream, and its word count less one.
Needle = tuple[str, int]


def variant_needles(variants: Iterable[tuple[str, ...]]) -> tuple[Needle, ...]:
    """The needles of `variants` in TextTokens.stream."""
    found = []
    for variant in variants:
        body = _SEP.join(variant)
        if body.count(_SEP) != len(variant) - 1:
            continue  # a word with the separator in it is no word of any text
        found.append((_SEP + body + _SEP, len(variant) - 1))
    return tuple(found)


# A line of plain words (ASCII letters and digits, single spaces) parses to one
# phrase of its words, lowercased: most lines are such, and a parse costs ~15 µs
# per line first seen (tests/test_highlight_needles.py checks the two agree).
_PLAIN_LINE = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")


@functools.lru_cache(maxsize=65536)  # as line_variants
def line_needles(line: str) -> tuple[Needle, ...]:
    """The needles of the line's variants, made once per line (the renderer's fast path)."""
    if len(line) <= MAX_LINE_LENGTH and _PLAIN_LINE.fullmatch(line):
        return variant_needles(Phrase(tuple(line.lower().split())).variants())
    return variant_needles(line_variants(line))


# Needles that share a prefix this long or longer (a word's singular and
# plural: "\x01diffusion\x01", "\x01diffusions\x01") are searched for together.
_SHARED = 3


@functools.lru_cache(maxsize=65536)  # as line_variants
def line_search(line: str) -> tuple[str, tuple[Needle, ...]]:
    """What `search_tokens` looks for in a text for this line: its needles' shared prefix ("": none), its needles."""
    needles = line_needles(line)
    prefix = os.path.commonprefix([needle for needle, _ in needles]) if needles else ""
    return (prefix if len(prefix) >= _SHARED else "", needles)


def search_tokens(stream: str, search: tuple[str, tuple[Needle, ...]]) -> list[tuple[int, int]]:
    """`needle_tokens` of the needles of `line_search`, maybe in another order.

    Their shared prefix is found once per place in `stream` (one scan of the
    text, not one per needle: most lines' plural is in no text), and the
    words before it are counted on from the previous place.
    """
    prefix, needles = search
    if not prefix:
        return needle_tokens(stream, needles)
    found = []
    first = counted = 0
    at = stream.find(prefix)
    while at != -1:
        for needle, extra in needles:
            if stream.startswith(needle, at):
                first += stream.count(_SEP, counted, at)
                counted = at
                found.append((first, first + extra))
        at = stream.find(prefix, at + 1)
    return found


def needle_tokens(stream: str, needles: Iterable[Needle]) -> list[tuple[int, int]]:
    """Every (first, last) token index where one of `needles` occurs in `stream`, unmerged."""
    found = []
    for needle, extra in needles:
        at = stream.find(needle)
        while at != -1:
            # The separators before it count the words before it.
            first = stream.count(_SEP, 0, at)
            found.append((first, first + extra))
            at = stream.find(needle, at + 1)
    return found


def merge_tokens(found: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted (first, last) token ranges, overlapping ones joined: `merge_spans` on tokens.

    Tokens are disjoint and in order, so spans overlap exactly when ranges share a token.
    """
    merged: list[tuple[int, int]] = []
    for first, last in sorted(found):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans, overlapping ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def highlight_spans(text: str, keyword_lines: Iterable[str]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping (start, end) spans of text where a line's phrase occurs."""
    variants = [variant for line in keyword_lines for variant in line_variants(line)]
    if not variants:
        return []
    return merge_spans(phrase_spans(text_tokens(text), variants))


def _start(text: str, token: Token) -> int:
    _, start, end = token
    return start + len(text[start:end]) - len(text[start:end].lstrip("{"))


def _end(text: str, token: Token) -> int:
    _, start, end = token
    return start + len(text[start:end].rstrip("}"))
