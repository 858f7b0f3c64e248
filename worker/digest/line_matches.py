"""Each distinct keyword line's papers among a day's, matched once (`LineMatches`).

Used by worker/digest/core.py: `DayDigest` keeps one for the day's own papers
and one for its late papers, and asks it for the papers a reader sees per line.
The matching itself is worker/digest/selection.py's, which says in the same
pass which papers a line matches by their title alone (the first key of
worker/digest/relevance.py's order).
"""

from collections.abc import Callable
from functools import cached_property

from newsletter.models import AnnounceType, Paper
from worker.digest.selection import match_lines

# What every reader gets; replacements only those who tick them (core.py sorts by it too).
ALWAYS_INCLUDED = (AnnounceType.NEW, AnnounceType.CROSS)


class LineMatches:
    """Each distinct keyword line's papers among `papers`, matched once.

    Per line: its papers in section order (by `order`), how many of them
    are new or cross-lists (the rest, replacements, come last), and those
    whose title alone it matches.
    """

    def __init__(self, papers: dict[str, Paper], order: Callable[[Paper], tuple]):
        self.papers = papers
        self._order = order
        self._lines: dict[str, tuple[tuple[str, ...], int, frozenset[str]]] = {}

    @cached_property
    def _rank(self) -> dict[str, int]:
        ordered = sorted(self.papers.values(), key=self._order)
        return {paper.arxiv_id: n for n, paper in enumerate(ordered)}

    def match(self, lines: set[str]) -> None:
        new = sorted(lines - self._lines.keys())
        if not new:
            return
        found, titled = match_lines(list(self.papers.values()), new) if self.papers else ({}, {})
        rank = self._rank
        for line in new:
            ids = tuple(sorted(found.get(line, ()), key=rank.__getitem__))
            always = sum(self.papers[i].announce_type in ALWAYS_INCLUDED for i in ids)
            self._lines[line] = (ids, always, titled.get(line, frozenset()))

    def shown(self, line: str, include_replacements: bool) -> tuple[str, ...]:
        """The line's papers a reader sees (`match` first)."""
        ids, always, _titled = self._lines[line]
        return ids if include_replacements else ids[:always]

    def titled(self, line: str) -> frozenset[str]:
        """The line's papers whose title alone it matches (`match` first)."""
        return self._lines[line][2]
