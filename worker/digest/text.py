"""Line wrapping for the digest's plain-text part.

Used by worker/digest/core.py: `wrap_text` is handed to the text template as
`wrap`, and `limit_lines` is applied to the rendered text. Owns the text
part's line width and the hard line-length limit of RFC 5322.
"""

import re
import unicodedata
from functools import lru_cache

# Characters per line in the text part (RFC 5322 allows 998 octets, we aim for readability).
TEXT_WIDTH = 76
# Words up to this long (URLs) stay whole on a line of their own; longer ones are split.
_LONGEST_WORD = 200


# Runs of ASCII characters, all single-width.
_ASCII = re.compile("[\x00-\x7f]+")


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


# The same titles and abstracts recur in thousands of digests a day.
@lru_cache(maxsize=16384)
def wrap_text(text: str, indent: str = "", width: int = TEXT_WIDTH) -> str:
    """`text` as lines of at most `width` columns (CJK counts double), each indented.

    Words and URLs are never split (unless absurdly long); CJK text, which
    has no spaces, breaks between any two characters, except that no line
    starts with closing punctuation or ends with an opening bracket.
    """
    if unwrapped(text, len(indent), width):
        # Most calls (keyword headings, "Matched:" lines) are one short line:
        # the general loop would return it as it is.
        return indent + text
    return _wrap(text, indent, width)


def unwrapped(text: str, indent: int = 0, width: int = TEXT_WIDTH) -> bool:
    """Whether `wrap_text` returns `text` as it is after an indent of `indent` characters.

    Also what lets worker/digest/keyword_pieces.py fill a keyword into a text
    macro's output instead of rendering the macro per line.
    """
    return len(text) <= max(width - indent, 20) and _fits(text)


def _fits(text: str) -> bool:
    """Whether `text` is one line the wrapping loop leaves alone (its length checked apart).

    Printable text without double-width characters is one column a character
    and its only space is " " (str.isprintable is False for every other
    space); not empty (no line at all) and no space at either end (the loop
    drops those). Keyword headings ("line · 3 papers") are such text.
    """
    return text.isprintable() and text[:1] not in ("", " ") and text[-1] != " " and _narrow(text)


def _narrow(text: str) -> bool:
    """Whether no character of `text` is double-width (CJK)."""
    # Only the non-ASCII characters are looked up, each once: a keyword
    # heading's only one is its " · ".
    return text.isascii() or not any(_width(ch) == 2 for ch in set(_ASCII.sub("", text)))


# Line breaking of CJK text (the kinsoku rules of JIS X 4051, which Chinese
# typesetting follows too): no line starts with closing punctuation, and none
# ends with an opening bracket. The ASCII ones count where they touch CJK
# text with no space between ("模型, 以及").
_NO_LINE_START = frozenset(
    "，。、；：！？）〕］｝〉》」』】〙〗〟’”｠»…‥·・ー～ヽヾゝゞ々〻"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ"
    ",.;:!?)]}%"
)
_NO_LINE_END = frozenset("（〔［｛〈《「『【〘〖〝‘“｟«([{")

# A whitespace character, or a run of others (re's \s is str.isspace).
_RUNS = re.compile(r"\s|\S+")


def _wrap(text: str, indent: str, width: int) -> str:
    narrow = _narrow(text)
    room = max(width - len(indent), 20)
    if narrow and _fits(text) and "  " not in text:
        # Words between single spaces (most abstracts, once TeX is made readable).
        words = text.split(" ")
        if max(map(len, words)) <= _LONGEST_WORD:
            return _fill_words(words, indent, room)
    tokens = _narrow_tokens(text) if narrow else _tokens(text)
    lines: list[str] = []
    line, used = "", 0
    for token in tokens:
        size = len(token) if narrow else sum(_width(c) for c in token)
        if token == " ":
            if line:
                line, used = line + " ", used + 1
            continue
        if used + size > room and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        while size > _LONGEST_WORD:
            # A "word" no line can hold (hostile input): hard-split it.
            lines.append(token[:_LONGEST_WORD])
            token = token[_LONGEST_WORD:]
            size = sum(_width(c) for c in token)
        line, used = line + token, used + size
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(indent + line for line in lines)


def _fill_words(words: list[str], indent: str, room: int) -> str:
    """`_wrap`'s loop for words of one column a character between single spaces.

    A line takes words while they and a space after each fit in `room`, as
    the loop counts them; no word needs splitting.
    """
    lines: list[str] = []
    line: list[str] = []
    used = 0
    for word in words:
        if line and used + len(word) > room:
            lines.append(indent + " ".join(line))
            line, used = [], 0
        line.append(word)
        used += len(word) + 1
    lines.append(indent + " ".join(line))
    return "\n".join(lines)


def _narrow_tokens(text: str) -> list[str]:
    """`_tokens` of a text without double-width characters, found by a regex (in C)."""
    return [" " if run.isspace() else run for run in _RUNS.findall(text)]


def _tokens(text: str) -> list[str]:
    """Words, " " per whitespace character, and each double-width character on its own."""
    tokens: list[str] = []
    word = ""
    for ch in text:
        if ch.isspace():
            if word:
                tokens.append(word)
            word = ""
            tokens.append(" ")
        elif _width(ch) == 2:
            if word:
                tokens.append(word)
            word = ""
            tokens.append(ch)
        else:
            word += ch
    if word:
        tokens.append(word)
    return _glue(tokens)


def _glue(tokens: list[str]) -> list[str]:
    """Tokens with closing punctuation joined to the one before, opening brackets to the one after.

    A line break falls only between tokens, so no line starts or ends with them.
    """
    glued: list[str] = []
    for token in tokens:
        if (
            glued
            and token != " "
            and glued[-1] != " "
            and (token[0] in _NO_LINE_START or glued[-1][-1] in _NO_LINE_END)
        ):
            glued[-1] += token
        else:
            glued.append(token)
    return glued


def limit_lines(text: str, limit: int = 998) -> str:
    """Split every line longer than `limit` bytes, whatever the template or data did."""
    out = []
    for line in text.split("\n"):
        while len(line.encode()) > limit:
            cut = limit // 4  # characters; at most 4 bytes each in UTF-8
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\n".join(out)
