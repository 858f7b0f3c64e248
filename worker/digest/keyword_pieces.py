"""One keyword line's pieces of a digest: its section heading, links, footer entry, "matched:".

Used by worker/digest/fragments.py (`DayFragments` keeps a `KeywordCache`, a
bounded LRU of them, per listing date) and worker/digest/assembly.py (a reader's
digest takes each of its lines' pieces). A keyword macro is rendered once per
shape (`keyword_shape`) and filled with each line, escaped: no Jinja per line.
The text part's heading and "Matched:" line wrap, so their macros are
rendered per line only where the line would wrap (`line_shape`).
"""

from collections.abc import Callable
from typing import NamedTuple

from markupsafe import escape

from worker.digest.pieces import LRU, Fragment, Sized, fill_hole, fragment, hole, sized
from worker.digest.text import limit_lines, unwrapped


class Counted(NamedTuple):
    """A keyword's section pieces for one paper count (hole: anchor)."""

    heading_html: Fragment
    heading_text: str
    link: Fragment  # in the header, followed by " · "
    last_link: Fragment


# Renders a keyword macro with the given keyword (a hole, a probe or the line itself).
Render = Callable[[str], str]
Shapes = Callable[[tuple, Render], Fragment | None]
# A text macro's output before and after the keyword (`line_shape`).
LineShape = tuple[str, str]
LineShapes = Callable[[tuple, Render], LineShape | None]


class CountShapes(NamedTuple):
    """The keyword macros of a section's pieces for one paper count, as shapes (None: render)."""

    heading_html: Fragment | None
    heading_text: LineShape | None
    link: Fragment | None
    last_link: Fragment | None


class KeywordPieces:
    """One keyword line's pieces, each made on first use.

    The HTML pieces are the macro's output for the line's count with a hole
    for the keyword (`DayFragments.keyword_shape`, rendered once per count),
    filled with the escaped line: no Jinja per keyword line.
    """

    def __init__(
        self,
        html,
        text,
        keyword: str,
        shapes: Shapes,
        line_shapes: LineShapes,
        count_shapes: Callable[[int], CountShapes],
    ):
        self.keyword = keyword
        self._html = html
        self._text = text
        self._shapes = shapes
        self._line_shapes = line_shapes
        self._count_shapes = count_shapes
        self._counted: dict[int, Counted] = {}
        # What every digest with this line shows: made at once (a cached_property
        # takes a lock per first use on Python 3.11, and a new line is met ~once
        # a digest).
        self.escaped = sized(str(escape(keyword)))
        footer = self._filled(("footer",), lambda k: html.footer_keyword(k, False))
        self.footer_html = Sized(footer.parts[0], footer.size)
        self.footer_text = self._text_line(("footer.txt",), text.footer_keyword)
        self._matched: tuple[Sized, str] | None = None
        self._last_footer_html: Sized | None = None

    def counted(self, count: int) -> Counted:
        found = self._counted.get(count)
        if found is None:
            found = self._counted[count] = self._make_counted(count)
        return found

    def _make_counted(self, count: int) -> Counted:
        shapes = self._count_shapes(count)
        html, anchor = self._html, hole("anchor")
        text = fill_line(shapes.heading_text, self.keyword) if shapes.heading_text else None
        if text is None:
            # A filled shape's lines are within the limit (see `line_shape`).
            text = limit_lines(str(self._text.section_heading(self.keyword, count)))
        return Counted(
            self._fill(shapes.heading_html, lambda k: html.section_heading(anchor, k, count)),
            text,
            self._fill(shapes.link, lambda k: html.section_link(anchor, k, count, False)),
            self._fill(shapes.last_link, lambda k: html.section_link(anchor, k, count, True)),
        )

    def _fill(self, shape: Fragment | None, render: Render) -> Fragment:
        """A section piece of this line: `shape` filled, or `render` (the macro) rendered."""
        if shape is None:
            return fragment(render(self.keyword), holes=("anchor",))
        return self._fill_shape(shape, ("anchor",))

    def _filled(self, key: tuple, render: Render, holes: tuple[str, ...] = ()) -> Fragment:
        """The macro's output for this line, with `holes` left."""
        shape = self._shapes(key, render)
        if shape is None:
            return fragment(render(self.keyword), holes=holes)
        return self._fill_shape(shape, holes)

    def _fill_shape(self, shape: Fragment, holes: tuple[str, ...]) -> Fragment:
        piece = fill_hole(shape, "keyword", self.escaped)
        if piece.holes != holes:
            raise ValueError(f"expected holes {holes}, the template has {piece.holes}")
        return piece

    @property
    def last_footer_html(self) -> Sized:
        """The footer's item for this line when it is the last (made on first use).

        Not a cached_property: compiled with mypyc (setup.py), one is made again on every use.
        """
        if self._last_footer_html is None:
            html = self._html
            piece = self._filled(("last footer",), lambda k: html.footer_keyword(k, True))
            self._last_footer_html = Sized(piece.parts[0], piece.size)
        return self._last_footer_html

    def _text_line(self, key: tuple, render: Render) -> str:
        """A text macro's output for this line, lines limited: its shape filled, or rendered."""
        shape = self._line_shapes(key, render)
        filled = fill_line(shape, self.keyword) if shape else None
        # A filled shape's lines are within the limit (see `line_shape`).
        return filled if filled is not None else limit_lines(str(render(self.keyword)))

    @property
    def matched(self) -> tuple[Sized, str]:
        """ "matched:" of an entry only this line matched, in HTML and text (made on first use)."""
        if self._matched is None:
            self._matched = matched_pieces(
                self._html, self._text, (self.keyword,), self._line_shapes
            )
        return self._matched


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


# Keywords for which a text macro's filled shape must equal its output: each
# stands on a line the wrapping leaves alone (one short with what HTML would
# escape and non-ASCII, one that nearly fills the line).
_LINE_PROBES = ("a&b <i>\"q\"</i> 'x' \u2019\u00e9", "graph neural networks " * 2 + "x" * 14)


def line_shape(render: Render) -> LineShape | None:
    """`render`'s output cut around the keyword; None unless filling it is rendering.

    For a text macro that wraps the keyword's line (worker/digest/text.py):
    `fill_line` fills the shape only where that line would not wrap.
    """
    rendered = str(render(_LINE_PROBES[0]))
    parts = rendered.split(_LINE_PROBES[0])
    if len(parts) != 2 or limit_lines(rendered) != rendered:
        return None
    shape = (parts[0], parts[1])
    for probe in _LINE_PROBES:
        if fill_line(shape, probe) != str(render(probe)):
            return None
    return shape


def fill_line(shape: LineShape, value: str) -> str | None:
    """The macro's output for `value`, or None where its line would wrap (then render it).

    The line, less its leading spaces (at least the wrapping's indent), must be
    one `wrap_text` leaves as it is: short, printable, no double-width
    characters, and `value` without a space at either end (which wrapping
    would drop). Such a line is well within limit_lines' 998 bytes.
    """
    before, after = shape
    if value[:1] in ("", " ") or value[-1] == " ":
        return None
    end = after.find("\n")
    line = before[before.rfind("\n") + 1 :] + value + (after if end == -1 else after[:end])
    text = line.lstrip(" ")
    return before + value + after if unwrapped(text, len(line) - len(text)) else None


def matched_pieces(
    html, text, lines: tuple[str, ...], line_shapes: LineShapes | None = None
) -> tuple[Sized, str]:
    """ "matched:" of an entry `lines` matched, in HTML and text (filled, or rendered)."""
    joined = ", ".join(lines)
    # The macro shows the lines joined: a one-line tuple of them renders the same.
    render = lambda k: text.matched_line((k,))  # noqa: E731
    shape = line_shapes(("matched.txt",), render) if line_shapes else None
    filled = fill_line(shape, joined) if shape else None
    return sized(str(escape(joined))), filled if filled is not None else str(
        text.matched_line(lines)
    )


class KeywordCache:
    """A day's keyword lines' pieces, in a bounded LRU (`limit` lines), made on first use.

    `small` (shared with the day's other small pieces) keeps the "matched:"
    pieces of several lines. The macros' shapes, a few per count and locale,
    are kept apart: every line first seen needs them.
    """

    def __init__(self, html, text, limit: int, small: LRU):
        self._html = html
        self._text = text
        self._lines = LRU(limit)
        self._small = small
        # Per paper count (at most the day's papers): the section pieces' shapes.
        self._counts: dict[int, CountShapes] = {}
        # Per macro (footer item, "matched:" line, ...): its shape, or None (render it).
        self._shapes: dict[tuple, Fragment | None] = {}
        self._line_shapes: dict[tuple, LineShape | None] = {}

    def pieces(self, keyword: str) -> KeywordPieces:
        # LRU.find inlined: several lookups per digest.
        cached = self._lines.entries
        found = cached.get(keyword)
        if found is not None:
            cached.move_to_end(keyword)
        else:
            found = KeywordPieces(
                self._html, self._text, keyword, self.shape, self.line_shape, self.count_shapes
            )
            self._lines.put(keyword, found)
        return found

    def shape(self, key: tuple, render: Render) -> Fragment | None:
        """A keyword macro's output with a hole for the keyword, made once per `key` (see KeywordPieces)."""
        if key not in self._shapes:
            self._shapes[key] = keyword_shape(render)
        return self._shapes[key]

    def count_shapes(self, count: int) -> CountShapes:
        """The shapes of a section's pieces for `count` papers, made once per count."""
        found = self._counts.get(count)
        if found is None:
            html, text, anchor = self._html, self._text, hole("anchor")
            found = self._counts[count] = CountShapes(
                keyword_shape(lambda k: html.section_heading(anchor, k, count)),
                line_shape(lambda k: text.section_heading(k, count)),
                keyword_shape(lambda k: html.section_link(anchor, k, count, False)),
                keyword_shape(lambda k: html.section_link(anchor, k, count, True)),
            )
        return found

    def line_shape(self, key: tuple, render: Render) -> LineShape | None:
        """A text macro's output cut around the keyword, made once per `key` (see `line_shape`)."""
        if key not in self._line_shapes:
            self._line_shapes[key] = line_shape(render)
        return self._line_shapes[key]

    def matched(self, lines: tuple[str, ...]) -> tuple[Sized, str]:
        """ "matched:" of an entry, in HTML and text."""
        if len(lines) == 1:
            return self.pieces(lines[0]).matched
        return self._small.get_or_make(
            ("matched", lines),
            lambda: matched_pieces(self._html, self._text, lines, self.line_shape),
        )
