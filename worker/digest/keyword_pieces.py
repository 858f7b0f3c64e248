"""One keyword line's pieces of a digest: its section heading, links, footer entry, "matched:".

Used by worker/digest/fragments.py (`DayFragments` keeps a `KeywordCache`, a
bounded LRU of them, per listing date) and worker/digest/assembly.py (a reader's
digest takes each of its lines' pieces). A keyword macro is rendered once per
shape (`keyword_shape`) and filled with each line, escaped: no Jinja per line.
"""

from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

from markupsafe import escape

from worker.digest.pieces import LRU, Fragment, Sized, fill_hole, fragment, hole, sized
from worker.digest.text import limit_lines


class Counted(NamedTuple):
    """A keyword's section pieces for one paper count (hole: anchor)."""

    heading_html: Fragment
    heading_text: str
    link: Fragment  # in the header, followed by " · "
    last_link: Fragment


# Renders a keyword macro with the given keyword (a hole, a probe or the line itself).
Render = Callable[[str], str]
Shapes = Callable[[tuple, Render], Fragment | None]


class KeywordPieces:
    """One keyword line's pieces, each made on first use.

    The HTML pieces are the macro's output for the line's count with a hole
    for the keyword (`DayFragments.keyword_shape`, rendered once per count),
    filled with the escaped line: no Jinja per keyword line.
    """

    def __init__(self, html, text, keyword: str, shapes: Shapes):
        self.keyword = keyword
        self._html = html
        self._text = text
        self._shapes = shapes
        self._counted: dict[int, Counted] = {}

    def counted(self, count: int) -> Counted:
        found = self._counted.get(count)
        if found is None:
            anchor = hole("anchor")
            html = self._html
            found = self._counted[count] = Counted(
                self._filled(
                    ("heading", count),
                    lambda k: html.section_heading(anchor, k, count),
                    ("anchor",),
                ),
                limit_lines(str(self._text.section_heading(self.keyword, count))),
                self._filled(
                    ("link", count),
                    lambda k: html.section_link(anchor, k, count, False),
                    ("anchor",),
                ),
                self._filled(
                    ("last link", count),
                    lambda k: html.section_link(anchor, k, count, True),
                    ("anchor",),
                ),
            )
        return found

    def _filled(self, key: tuple, render: Render, holes: tuple[str, ...] = ()) -> Fragment:
        """The macro's output for this line, with `holes` left."""
        shape = self._shapes(key, render)
        if shape is None:
            return fragment(render(self.keyword), holes=holes)
        piece = fill_hole(shape, "keyword", self.escaped)
        if piece.holes != holes:
            raise ValueError(f"expected holes {holes}, the template has {piece.holes}")
        return piece

    @cached_property
    def escaped(self) -> Sized:
        return sized(str(escape(self.keyword)))

    @cached_property
    def footer_html(self) -> Sized:
        piece = self._filled(("footer",), lambda k: self._html.footer_keyword(k, False))
        return Sized(piece.parts[0], piece.size)

    @cached_property
    def last_footer_html(self) -> Sized:
        piece = self._filled(("last footer",), lambda k: self._html.footer_keyword(k, True))
        return Sized(piece.parts[0], piece.size)

    @cached_property
    def footer_text(self) -> str:
        return limit_lines(str(self._text.footer_keyword(self.keyword)))

    @cached_property
    def matched(self) -> tuple[Sized, str]:
        """ "matched:" of an entry only this line matched, in HTML and text."""
        return matched_pieces(self._html, self._text, (self.keyword,))


# Keyword lines with what HTML escapes, non-ASCII and spaces, short and long:
# a macro whose output with each is its output with a hole filled by it
# escaped takes the line as it is (no wrapping, no test of its value).
_PROBES = ("a&b <i>\"q\"</i> 'x' \u2019\u00e9", "graph neural networks " * 8)


def keyword_shape(render: Render) -> Fragment | None:
    """`render`'s output with a hole for the keyword; None unless filling it is rendering."""
    shape = fragment(render(hole("keyword")))
    if "keyword" not in shape.holes:
        return None
    for probe in _PROBES:
        if fill_hole(shape, "keyword", sized(str(escape(probe)))) != fragment(render(probe)):
            return None
    return shape


def matched_pieces(html, text, lines: tuple[str, ...]) -> tuple[Sized, str]:
    """ "matched:" of an entry `lines` matched, in HTML and text (rendered)."""
    return sized(str(escape(", ".join(lines)))), str(text.matched_line(lines))


class KeywordCache:
    """A day's keyword lines' pieces, in a bounded LRU (`limit` lines), made on first use.

    `small` (shared with the day's other small pieces) keeps the macros'
    shapes and the "matched:" pieces of several lines.
    """

    def __init__(self, html, text, limit: int, small: LRU):
        self._html = html
        self._text = text
        self._lines = LRU(limit)
        self._small = small

    def pieces(self, keyword: str) -> KeywordPieces:
        found = self._lines.find(keyword)
        if found is None:
            found = KeywordPieces(self._html, self._text, keyword, self.shape)
            self._lines.put(keyword, found)
        return found

    def shape(self, key: tuple, render: Render) -> Fragment | None:
        """A keyword macro's output with a hole for the keyword, made once per `key` (see KeywordPieces)."""
        return self._small.get_or_make(("shape", *key), lambda: (keyword_shape(render),))[0]

    def matched(self, lines: tuple[str, ...]) -> tuple[Sized, str]:
        """ "matched:" of an entry, in HTML and text."""
        if len(lines) == 1:
            return self.pieces(lines[0]).matched
        return self._small.get_or_make(
            ("matched", lines), lambda: matched_pieces(self._html, self._text, lines)
        )
