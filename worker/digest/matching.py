"""Keyword matching: which papers each keyword line selects (pure, no I/O).

Used by the sign-up form to validate and dedupe lines (`parse_keyword`,
`normalize_keyword_line`), by the keyword preview and the feed, and by the two
modules that apply lines to papers: worker/digest/selection.py (which papers a
line selects) and worker/digest/highlight.py (which words of a text to mark).
It owns the keyword syntax and the tokenizer; the terms of a line are ANDed:

    reinforcement learning            a phrase (consecutive plain words); its last
                                      word also matches its plural (-s, -es, -ies)
    "diffusion policy"                an exact phrase: the same, without the plural
    -survey  -"language model"        exclude papers containing the word (or its plural)
                                      or the exact phrase
    cat:cs.RO  cat:cs                 a category, or every category of an archive
    au:Levine  au:"Sergey Levine"     an author: whole words of one author's name

Title and abstract are compared as a stream of words: case, accents, TeX markup
($, braces, \\textbf, {\\em ...}, \\"o) and the separators space, hyphen, dash,
underscore and apostrophe do not matter; other punctuation (. , ; : ( ) ...)
ends a phrase, so "learning, reinforcement" is not "learning reinforcement".
A Greek letter and its TeX name are the word spelled out: α = \\alpha = alpha.
"""

import functools
import re
import unicodedata
from dataclasses import dataclass

MAX_LINE_LENGTH = 100  # the width of Keyword.text

# arXiv's current archives; `cat:` must name one of them (a typo would match nothing).
ARCHIVES = frozenset(
    "astro-ph cond-mat cs econ eess gr-qc hep-ex hep-lat hep-ph hep-th math math-ph"
    " nlin nucl-ex nucl-th physics q-bio q-fin quant-ph stat".split()
)

_GREEK_LETTERS = "\u0391-\u03a9\u03b1-\u03c9"
GREEK_NAMES = {  # α -> alpha; Unicode spells lambda "LAMDA"
    ch: unicodedata.name(ch).split()[-1].lower().replace("lamda", "lambda")
    for ch in map(chr, [*range(0x391, 0x3AA), *range(0x3B1, 0x3CA)])
    if unicodedata.name(ch, "")
}
_TEX_GREEK = set(GREEK_NAMES.values())

_LETTER = rf"[^\W_{_GREEK_LETTERS}]"
_SEPARATORS = r"\s\-\u2010-\u2015'\u2019_"  # one and the same separator between words
# One pass over a text finds its words, Greek letters, TeX control words, and the
# punctuation that ends a phrase; whatever else it skips ($ { } ~ and separators).
_SCAN = re.compile(
    r"(?P<command>\\[A-Za-z]+)"
    rf"|(?P<greek>[{_GREEK_LETTERS}])"
    rf"|(?P<word>(?:{_LETTER}|[\u0300-\u036f]|(?<=\d)\.(?=\d)"  # 2.0 is one word
    rf"|\\[\"'`^~=.](?=\{{?{_LETTER})|\{{(?={_LETTER})|(?<={_LETTER})\}})+)"  # G\"{o}del
    rf"|(?P<stop>[^{_SEPARATORS}\w\u0300-\u036f${{}}~\\])"
)
_TEX_ACCENT = re.compile(r"\\[\"'`^~=.]|[{}]")
_PHRASE_CHARS = re.compile(rf"[^\w{_SEPARATORS}.]|(?<!\d)\.|\.(?!\d)")
_AUTHOR_CHARS = re.compile(rf"[^\w{_SEPARATORS}.]")
_CATEGORY = re.compile(r"([a-z]+(?:-[a-z]+)?)(?:\.[a-z]+(?:-[a-z]+)?)?")
_TERM = re.compile(r'(-?)(?:([A-Za-z]+):)?(?:"([^"]*)"|([^\s"]*))')

Token = tuple[str, int, int]  # (folded word, start, end) in the text; "" ends a phrase


class KeywordError(ValueError):
    """A keyword line the matcher does not understand; str() is the message to show.

    `message` is the English text with %(name)s holes and `values` fill them:
    the site shows it in the reader's language (newsletter/forms.py; the
    catalogue extracts each KeywordError("...") as a message).
    """

    def __init__(self, message: str, **values: object):
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]  # folded, as in the text's word stream
    exact: bool = False

    def variants(self) -> tuple[tuple[str, ...], ...]:
        """The word sequences that count as this phrase: itself, and the plural."""
        plural = None if self.exact else _plural(self.words[-1])
        return (self.words,) if plural is None else (self.words, (*self.words[:-1], plural))


@dataclass(frozen=True)
class Query:
    phrases: tuple[Phrase, ...] = ()
    excluded: tuple[Phrase, ...] = ()
    categories: tuple[str, ...] = ()  # lowercase: "cs.ro", or an archive "cs"
    authors: tuple[tuple[str, ...], ...] = ()  # folded words of (part of) a name


def _plural(word: str) -> str | None:
    if not word.isalpha():
        return None
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if len(word) > 1 and word[-1] == "y" and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _fold(word: str) -> str:
    """Lowercase, without accents or TeX accent markup: G\\"{o}del -> godel."""
    if word.isascii() and word.isalnum():
        return word.lower()
    word = unicodedata.normalize("NFKD", _TEX_ACCENT.sub("", word).casefold())
    return "".join(ch for ch in word if ch.isalnum() or ch == ".")


def tokenize(text: str) -> list[Token]:
    """Split text into folded words with their spans; phrase-ending punctuation gives ""."""
    tokens: list[Token] = []
    for m in _SCAN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "word":
            value = _fold(value)
        elif kind == "greek":
            value = GREEK_NAMES[value]
        elif kind == "command":
            value = value[1:].lower().removeprefix("var")  # \varepsilon = epsilon
            if value not in _TEX_GREEK:
                continue  # \textbf, \em, \cite: markup around words, not a word
        else:
            value = ""
        if value or kind == "stop":
            tokens.append((value, m.start(), m.end()))
    return tokens


def normalize_keyword_line(line: str) -> str:
    """Trim and collapse whitespace (and compose accents) so equal lines compare equal."""
    return " ".join(unicodedata.normalize("NFC", line).split())


def parse_keyword(line: str) -> Query:
    """Parse one keyword line, or raise KeywordError saying what is wrong with it."""
    line = normalize_keyword_line(line).replace("\u201c", '"').replace("\u201d", '"')
    if not line:
        raise KeywordError("The keyword is empty.")
    if not any(ch.isalnum() for ch in line):
        raise KeywordError("“%(text)s” has no letters or digits.", text=line)
    if len(line) > MAX_LINE_LENGTH:
        raise KeywordError(
            "A keyword line can be at most %(most)s characters long.", most=MAX_LINE_LENGTH
        )
    if line.count('"') % 2:
        raise KeywordError('A quote is not closed: put phrases between two quotes, "like this".')
    phrases: list[Phrase] = []
    excluded: list[Phrase] = []
    categories: list[str] = []
    authors: list[tuple[str, ...]] = []
    bare: list[str] = []  # consecutive plain words form one phrase
    position = 0
    while position < len(line):
        if line[position] == " ":
            position += 1
            continue
        m = _TERM.match(line, position)
        assert m is not None  # every part of _TERM is optional: it matches anywhere
        negated, operator, quoted, plain = m.groups()
        operator = operator and operator.lower()  # "Cat:" from a phone's keyboard
        position = m.end()
        if position < len(line) and line[position] != " ":
            raise KeywordError('Quotes go around a whole phrase, "like this", with spaces outside.')
        value = quoted if quoted is not None else plain
        term = m.group()
        if operator is None and not negated and quoted is None:
            bare.append(value)
            continue
        if bare:
            phrases.append(_phrase(" ".join(bare), exact=False))
            bare = []
        if not value.strip():
            if operator:
                example = {"cat": "cat:cs.RO", "au": 'au:"Ada Lovelace"'}.get(operator, "")
                if example:
                    raise KeywordError(
                        "“%(operator)s:” needs a value, e.g. %(example)s.",
                        operator=operator,
                        example=example,
                    )
                raise KeywordError("Unknown operator “%(operator)s:”.", operator=operator)
            raise KeywordError("“%(term)s” needs a word or a phrase.", term=term)
        if operator and operator not in ("cat", "au"):
            raise KeywordError(
                "Unknown operator “%(operator)s:”: use cat: or au:.", operator=operator
            )
        if negated and operator:
            raise KeywordError(
                "“%(term)s”: “-” excludes words and phrases, not %(operator)s:.",
                term=term,
                operator=operator,
            )
        if negated:
            if value.startswith("-"):
                raise KeywordError(
                    "“%(term)s”: put a single “-” before the word to exclude.", term=term
                )
            excluded.append(_phrase(value, exact=quoted is not None))
        elif operator == "cat":
            categories.append(_category(value))
        elif operator == "au":
            authors.append(_author(value))
        else:
            phrases.append(_phrase(value, exact=True))
    if bare:
        phrases.append(_phrase(" ".join(bare), exact=False))
    if not (phrases or categories or authors):
        raise KeywordError("A line needs a phrase, cat: or au:, not only exclusions.")
    return Query(tuple(phrases), tuple(excluded), tuple(categories), tuple(authors))


def _phrase(text: str, exact: bool) -> Phrase:
    bad = _PHRASE_CHARS.search(text)
    if bad and bad.group() == ".":
        raise KeywordError(
            "“%(text)s”: “.” fits only in numbers (2.0); for a category write cat:cs.RO.",
            text=text,
        )
    if bad:
        raise KeywordError(
            "“%(text)s”: “%(char)s” cannot be matched; use letters, digits, spaces and hyphens.",
            text=text,
            char=bad.group(),
        )
    words = tuple(word for word, _, _ in tokenize(text))
    if not words:
        raise KeywordError("“%(text)s” has no letters or digits.", text=text)
    return Phrase(words, exact)


def _category(value: str) -> str:
    category = value.lower()
    m = _CATEGORY.fullmatch(category)
    if not m:
        raise KeywordError(
            "“cat:%(value)s” is not a category: write e.g. cat:cs.RO or cat:math.", value=value
        )
    if m.group(1) not in ARCHIVES:
        raise KeywordError(
            "“cat:%(value)s”: arXiv has no archive “%(archive)s”.", value=value, archive=m.group(1)
        )
    return category


def _author(value: str) -> tuple[str, ...]:
    bad = _AUTHOR_CHARS.search(value)
    if bad:
        raise KeywordError(
            "“au:%(value)s”: “%(char)s” cannot be part of a name.", value=value, char=bad.group()
        )
    words = name_words(value)
    if not words:
        raise KeywordError("“au:%(value)s” has no letters.", value=value)
    return words


@functools.lru_cache(maxsize=65536)  # a day names ~10,000 authors, matched page after page
def name_words(name: str) -> tuple[str, ...]:
    return tuple(word for word, _, _ in tokenize(name) if word)  # "J. Smith" = "J Smith"
