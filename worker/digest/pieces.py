"""Rendered text with holes, and the bounded caches that hold it (pure).

Used by worker/digest/fragments.py and worker/digest/assembly.py. A macro is
rendered once with `hole` markers where subscribers differ; `fragment` cuts
the output at them; `fill` puts one subscriber's values in, appending
segments to a list (no copying of the static text) and counting UTF-8
bytes, so a digest's size is a sum of known sizes rather than an encode.
"""

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from markupsafe import Markup, escape

from worker.digest.text import limit_lines

# A marker per hole, made once per process: no arXiv text can contain it.
_TOKEN = secrets.token_hex(12)
_HOLES = re.compile(f"\x00{_TOKEN}:(\\w+)\x00")


def hole(name: str) -> Markup:
    """The marker a macro renders where `name` is filled in per subscriber."""
    return Markup(f"\x00{_TOKEN}:{name}\x00")


class Fragment(NamedTuple):
    """Rendered text cut at its holes: static text around each hole, in order."""

    parts: tuple[str, ...]  # one more than holes
    holes: tuple[str, ...]
    size: int  # UTF-8 bytes of the static text


def fragment(
    rendered: str, text_part: bool = False, holes: tuple[str, ...] | None = None
) -> Fragment:
    """`rendered` cut at its holes; the text part's lines are kept within RFC 5322's limit.

    `holes`: the holes the caller fills, in order (checked, so a template edit
    cannot silently swap them).
    """
    pieces = _HOLES.split(str(rendered))
    if holes is not None and tuple(pieces[1::2]) != holes:
        raise ValueError(f"expected holes {holes}, the template has {tuple(pieces[1::2])}")
    parts = pieces[::2]
    if text_part:
        # Holes only ever sit inside short lines, so limiting each piece limits the message.
        parts = [limit_lines(part) for part in parts]
    return Fragment(tuple(parts), tuple(pieces[1::2]), sum(len(part.encode()) for part in parts))


def fill_hole(piece: Fragment, name: str, value: "Sized") -> Fragment:
    """`piece` with every hole called `name` filled by `value`; its other holes kept."""
    if piece.holes == (name,):
        # The usual case (a keyword macro's one hole): one concatenation.
        first, last = piece.parts
        return Fragment((first + value.text + last,), (), piece.size + value.size)
    parts = [piece.parts[0]]
    holes = []
    size = piece.size
    for hole_name, part in zip(piece.holes, piece.parts[1:], strict=True):
        if hole_name == name:
            parts[-1] += value.text + part
            size += value.size
        else:
            holes.append(hole_name)
            parts.append(part)
    return Fragment(tuple(parts), tuple(holes), size)


class Sized(NamedTuple):
    text: str
    size: int  # UTF-8 bytes


def sized(text: str) -> Sized:
    return Sized(text, len(text.encode()))


NOTHING = Sized("", 0)

# What markupsafe.escape replaces.
_TO_ESCAPE = re.compile("[&<>\"']")


def escaped(text: str) -> str:
    """`text` HTML-escaped as markupsafe does; most values (links) have nothing to escape."""
    return str(escape(text)) if _TO_ESCAPE.search(text) else text


def fill(out: list[str], piece: Fragment, *values: Sized) -> int:
    """Append `piece` with its holes filled by `values` (in order); return the bytes appended."""
    parts = piece.parts
    out.append(parts[0])
    size = piece.size
    index = 1
    for text, nbytes in values:
        out.append(text)
        out.append(parts[index])
        size += nbytes
        index += 1
    return size


def fill_text(out: list[str], piece: Fragment, *values: str) -> None:
    """Append `piece` with its holes filled by `values` (in order)."""
    parts = piece.parts
    out.append(parts[0])
    index = 1
    for text in values:
        out.append(text)
        out.append(parts[index])
        index += 1


class LRU:
    """A mapping that forgets its least recently used keys past `limit`.

    Holds an OrderedDict (moving a key to the end and dropping the first are
    O(1); a plain dict's first key is found by skipping the holes left by
    pops) rather than being one: mypyc's compiled build (setup.py) cannot
    subclass it. Hot callers look up `entries` themselves.
    """

    def __init__(self, limit: int):
        self.entries: OrderedDict = OrderedDict()
        self.limit = limit

    def clear(self) -> None:
        self.entries.clear()

    def get_or_make(self, key, make: Callable[[], object]):
        value = self.find(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def find(self, key):
        """The value of `key` (now the most recently used), or None."""
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        entries = self.entries
        entries[key] = value
        if len(entries) > self.limit:
            entries.popitem(last=False)
