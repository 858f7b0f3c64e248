"""Each distinct keyword line's papers among a day's, matched once (`_LineMatches`).

Used by worker/digest/core.py: `DayDigest` keeps one for the day's own papers
and one for its late papers, and asks it for the papers a reader sees per line.
The matching itself is worker/digest/selection.py's.
"""

from collections.abc import Callable
from functools import cached_property

from newsletter.models import AnnounceType, Paper
from worker.digest.selection import match_papers

_ALWAYS_INCLUDED = (AnnounceType.NEW, AnnounceType.CROSS)


class _LineMatches:
    """Each distinct keyword line's papers among `papers`, matched once.

    Per line: its papers in section order (by `order`), and how many of them
    are new or cross-lists (the rest, replacements, come last).
    """

    def __init__(self, papers: dict[str, Paper], order: Callable[[Paper], tuple]):
        self.papers = papers
        self._order = order
        self._lines: dict[str, tuple[tuple[str, ...], int]] = {}

    @cached_property
    def _rank(self) -> dict[str, int]:
        ordered = sorted(self.papers.values(), key=self._order)
        return {paper.arxiv_id: n for n, paper in enumerate(ordered)}

    def match(self, lines: set[str]) -> None:
        new = sorted(lines - self._lines.keys())
        if not new:
            return
        found = match_papers(list(self.papers.values()), new) if self.papers else {}
        rank = self._rank
        for line in new:
            ids = tuple(sorted(found.get(line, ()), key=rank.__getitem__))
            always = sum(self.papers[i].announce_type in _ALWAYS_INCLUDED for i in ids)
            self._lines[line] = (ids, always)

    def shown(self, line: str, include_replacements: bool) -> tuple[str, ...]:
        """The line's papers a reader sees (`match` first)."""
        ids, always = self._lines[line]
        return ids if include_replacements else ids[:always]
