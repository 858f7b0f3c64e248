"""Keyword matching: which papers each keyword line selects (pure, no I/O).

Run by the digest job once per listing date (`match_papers`), by the sign-up
form to validate and dedupe lines (`parse_keyword`, `normalize_keyword_line`)
and by the digest renderer to highlight matched words: `text_tokens` once per
title or abstract, then `phrase_spans` per keyword line (`highlight_spans` for one text).
It owns the keyword syntax; the terms of a line are ANDed:

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
import sys
import unicodedata
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import ahocorasick_rs

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
    """A keyword line the matcher does not understand; str() is the message to show."""


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


class PaperLike(Protocol):
    @property
    def arxiv_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def abstract(self) -> str: ...
    @property
    def authors(self) -> list[str]: ...
    @property
    def categories(self) -> list[str]: ...


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
        raise KeywordError(f"“{line}” has no letters or digits.")
    if len(line) > MAX_LINE_LENGTH:
        raise KeywordError(f"A keyword line can be at most {MAX_LINE_LENGTH} characters long.")
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
                raise KeywordError(
                    f"“{operator}:” needs a value, e.g. {example}."
                    if example
                    else f"Unknown operator “{operator}:”."
                )
            raise KeywordError(f"“{term}” needs a word or a phrase.")
        if operator and operator not in ("cat", "au"):
            raise KeywordError(f"Unknown operator “{operator}:”: use cat: or au:.")
        if negated and operator:
            raise KeywordError(f"“{term}”: “-” excludes words and phrases, not {operator}:.")
        if negated:
            if value.startswith("-"):
                raise KeywordError(f"“{term}”: put a single “-” before the word to exclude.")
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
            f"“{text}”: “.” fits only in numbers (2.0); for a category write cat:cs.RO."
        )
    if bad:
        raise KeywordError(
            f"“{text}”: “{bad.group()}” cannot be matched; use letters, digits, spaces and hyphens."
        )
    words = tuple(word for word, _, _ in tokenize(text))
    if not words:
        raise KeywordError(f"“{text}” has no letters or digits.")
    return Phrase(words, exact)


def _category(value: str) -> str:
    category = value.lower()
    m = _CATEGORY.fullmatch(category)
    if not m:
        raise KeywordError(f"“cat:{value}” is not a category: write e.g. cat:cs.RO or cat:math.")
    if m.group(1) not in ARCHIVES:
        raise KeywordError(f"“cat:{value}”: arXiv has no archive “{m.group(1)}”.")
    return category


def _author(value: str) -> tuple[str, ...]:
    bad = _AUTHOR_CHARS.search(value)
    if bad:
        raise KeywordError(f"“au:{value}”: “{bad.group()}” cannot be part of a name.")
    words = _name_words(value)
    if not words:
        raise KeywordError(f"“au:{value}” has no letters.")
    return words


@functools.lru_cache(maxsize=65536)  # a day names ~10,000 authors, matched page after page
def _name_words(name: str) -> tuple[str, ...]:
    return tuple(word for word, _, _ in tokenize(name) if word)  # "J. Smith" = "J Smith"


def _stream(tokens: list[Token]) -> str:
    # Words between single spaces, "|" where a phrase ends: a phrase " a b " then
    # matches only whole words, and never across punctuation.
    return " " + " ".join(word or "|" for word, _, _ in tokens) + " "


# A day's papers are matched again for each page of subscribers with new
# lines (dispatch streams them), and the keyword preview matches the last 5
# listing dates (~7,500 papers) for every request: tokenize each paper once per
# process. A worker fills ~1,500-3,000 entries; a web process ~7,500 (~11 MB).
@functools.lru_cache(maxsize=16384)
def _paper_stream(title: str, abstract: str) -> str:
    return _stream(tokenize(title) + [("", 0, 0)] + tokenize(abstract))


def _phrase_hits(papers: Sequence[PaperLike], phrases: set[Phrase]) -> dict[Phrase, set[str]]:
    """For each phrase, the papers whose title or abstract contains it: one automaton."""
    hits: dict[Phrase, set[str]] = {phrase: set() for phrase in phrases}
    owners: dict[str, list[Phrase]] = defaultdict(list)
    for phrase in phrases:
        for variant in phrase.variants():
            owners[" " + " ".join(variant) + " "].append(phrase)
    if not owners:
        return hits
    patterns = list(owners)
    automaton = ahocorasick_rs.AhoCorasick(patterns)
    for paper in papers:
        text = _paper_stream(paper.title, paper.abstract)
        for index in {i for i, _, _ in automaton.find_matches_as_indexes(text, overlapping=True)}:
            for phrase in owners[patterns[index]]:
                hits[phrase].add(paper.arxiv_id)
    return hits


def match_papers(
    papers: Sequence[PaperLike], keyword_lines: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Map each distinct keyword line to the arxiv_ids of the papers it matches.

    Every distinct phrase is searched once, all together; lines are then set
    operations. A line that does not parse (stored before a syntax change)
    matches nothing rather than stopping everyone's digest.
    """
    queries: dict[str, Query | None] = {}
    for line in keyword_lines:
        if line not in queries:
            try:
                queries[line] = parse_keyword(line)
            except KeywordError:
                queries[line] = None
    valid = [query for query in queries.values() if query is not None]
    hits = _phrase_hits(papers, {p for q in valid for p in (*q.phrases, *q.excluded)})
    wanted_authors = {author for query in valid for author in query.authors}
    by_category: dict[str, set[str]] = defaultdict(set)
    by_author: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for paper in papers:
        for category in paper.categories:
            category = category.lower()
            by_category[category].add(paper.arxiv_id)
            by_category[category.split(".")[0]].add(paper.arxiv_id)
        for name in paper.authors if wanted_authors else ():
            words = _name_words(name)
            for start in range(len(words)):
                for end in range(start + 1, len(words) + 1):
                    if words[start:end] in wanted_authors:
                        by_author[words[start:end]].add(paper.arxiv_id)

    selected: dict[Query, frozenset[str]] = {}
    for query in valid:
        if query in selected:
            continue
        required = [hits[phrase] for phrase in query.phrases]
        required += [by_category.get(category, set()) for category in query.categories]
        required += [by_author.get(author, set()) for author in query.authors]
        required.sort(key=len)
        chosen = required[0].intersection(*required[1:])
        for phrase in query.excluded:
            chosen -= hits[phrase]
        selected[query] = frozenset(chosen)
    return {line: selected[q] if q else frozenset() for line, q in queries.items()}


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
    return TextTokens(
        _SEP + _SEP.join(word for word, _, _ in tokens) + _SEP,
        array("l", (_start(text, token) for token in tokens)),
        array("l", (_end(text, token) for token in tokens)),
    )


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
    stream = tokens.stream
    found = []
    for variant in variants:
        body = _SEP.join(variant)
        if body.count(_SEP) != len(variant) - 1:
            continue  # a word with the separator in it is no word of any text
        needle = _SEP + body + _SEP
        at = stream.find(needle)
        while at != -1:
            # The separators before it count the words before it.
            first = stream.count(_SEP, 0, at)
            found.append((first, first + len(variant) - 1))
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
