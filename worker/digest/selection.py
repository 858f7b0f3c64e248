"""Which papers each keyword line selects (pure, no I/O).

Run by the digest core once per listing date (`match_papers`, through
worker/digest/line_matches.py) and by benchmarks/match.py and scale.py. The
keyword syntax and the tokenizer are worker/digest/matching.py's; this module applies parsed lines
to a day's papers, every distinct phrase searched once with one automaton. The
same pass says which papers a line matches by their title alone (`match_lines`),
the first key of a section's relevance order (worker/digest/relevance.py).
"""

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol

import ahocorasick_rs

from worker.digest.matching import (
    KeywordError,
    Phrase,
    Query,
    Token,
    name_words,
    parse_keyword,
    tokenize,
)


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
    # "#" (never a word) ends the title as "|" would: a hit ending before it is in the title.
    return _stream(tokenize(title) + [("#", 0, 0)] + tokenize(abstract))


Hits = dict[Phrase, set[str]]


def _phrase_hits(papers: Sequence[PaperLike], phrases: set[Phrase]) -> tuple[Hits, Hits]:
    """For each phrase, the papers whose title or abstract contains it, and whose title does."""
    hits: Hits = {phrase: set() for phrase in phrases}
    in_title: Hits = {phrase: set() for phrase in phrases}
    owners: dict[str, list[Phrase]] = defaultdict(list)
    for phrase in phrases:
        for variant in phrase.variants():
            owners[" " + " ".join(variant) + " "].append(phrase)
    if not owners:
        return hits, in_title
    patterns = list(owners)
    automaton = ahocorasick_rs.AhoCorasick(patterns)
    for paper in papers:
        text = _paper_stream(paper.title, paper.abstract)
        found = {i for i, _, _ in automaton.find_matches_as_indexes(text, overlapping=True)}
        if not found:
            continue
        for index in found:
            for phrase in owners[patterns[index]]:
                hits[phrase].add(paper.arxiv_id)
        # The title again on its own: a tenth of the text, cheaper than testing every hit.
        title = text[: text.index("#")]
        for index, _, _ in automaton.find_matches_as_indexes(title, overlapping=True):
            for phrase in owners[patterns[index]]:
                in_title[phrase].add(paper.arxiv_id)
    return hits, in_title


def match_papers(
    papers: Sequence[PaperLike], keyword_lines: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Map each distinct keyword line to the arxiv_ids of the papers it matches."""
    return match_lines(papers, keyword_lines)[0]


def match_lines(
    papers: Sequence[PaperLike], keyword_lines: Iterable[str]
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Each distinct keyword line's papers, and among them those its phrases match in the title.

    A title match is a match on the title alone: every phrase of the line in
    the title (the paper, matched, has no excluded phrase anywhere, and its
    cat: and au: hold); a line of only cat: or au: matches every paper's title.

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
    hits, in_title = _phrase_hits(papers, {p for q in valid for p in (*q.phrases, *q.excluded)})
    wanted_authors = {author for query in valid for author in query.authors}
    by_category: dict[str, set[str]] = defaultdict(set)
    by_author: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for paper in papers:
        for category in paper.categories:
            category = category.lower()
            by_category[category].add(paper.arxiv_id)
            by_category[category.split(".")[0]].add(paper.arxiv_id)
        for name in paper.authors if wanted_authors else ():
            words = name_words(name)
            for start in range(len(words)):
                for end in range(start + 1, len(words) + 1):
                    if words[start:end] in wanted_authors:
                        by_author[words[start:end]].add(paper.arxiv_id)

    selected: dict[Query, frozenset[str]] = {}
    titled: dict[Query, frozenset[str]] = {}
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
        titled[query] = frozenset(chosen.intersection(*(in_title[p] for p in query.phrases)))
    return (
        {line: selected[q] if q else frozenset() for line, q in queries.items()},
        {line: titled[q] if q else frozenset() for line, q in queries.items()},
    )
