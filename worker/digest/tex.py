"""TeX in arXiv titles and abstracts, made readable as plain Unicode text.

Called by worker/digest/entries.py on every title and abstract the digest shows,
English and translated. Pure (its symbol tables are read once, on first use).
Owns the conversion rules, a pass over running text and one over math; reading
the source is worker/digest/tex_scan.py's, composing marks and math alphabets
worker/digest/tex_glyphs.py's. The tables themselves (Greek letters, operators,
accents, sub/superscripts, ...) are data in worker/digest/data/tex_symbols.json, each
saying what it is for, loaded by worker/digest/tex_symbols.py.

The rule is "readable, never mangled": what we know becomes Unicode
($\\alpha$ -> α, \\textbf{x} -> x, $O(n^2)$ -> O(n²), $1.5$-$2.2\\times$ -> 1.5–2.2×);
what we do not know stays exactly as written. A math span we cannot convert
completely is kept verbatim, dollars included, rather than half-converted; an
unknown command outside math is kept as-is. Text with no TeX in it comes back
unchanged.
"""

import re

from worker.digest.tex_glyphs import Unconvertible, accent, operand, script, styled
from worker.digest.tex_scan import find_math_end, read_group, read_name, skip_spaces
from worker.digest.tex_symbols import symbol_tables

# Characters other than those `_Text.run` looks at (\ $ ~ ` ' { -).
_PLAIN = re.compile(r"[^\\$~`'{-]+")


def tex_to_text(s: str) -> str:
    """`s` with the TeX it contains made readable as Unicode; never raises."""
    try:
        return _Text(s).run()
    except RecursionError:
        # Absurdly deep nesting: the source itself is the safest reading.
        return s


class _Text:
    """A single left-to-right pass over running text."""

    def __init__(self, s: str):
        self.s = s
        self.out: list[str] = []
        # Where the last converted math span ended, for $1.5$-$2.2$ -> 1.5–2.2.
        self.last_math_end = -1

    def run(self) -> str:
        s, out = self.s, self.out
        i = 0
        while i < len(s):
            # A run of characters no rule below starts with is copied as it is,
            # in one slice (most of an abstract: a loop per character cost ~28%
            # of a worker's first digests of the day). Its trailing spaces stay
            # one character an item: \cite and \footnote look back at them.
            plain = _PLAIN.match(s, i)
            if plain is not None:
                run = plain.group()
                body = run.rstrip()
                if body:
                    out.append(body)
                out.extend(run[len(body) :])
                i = plain.end()
                continue
            c = s[i]
            if c == "\\":
                i = self.command(i)
            elif c == "$":
                i = self.math(i)
            elif c == "~":
                out.append(" ")
                i += 1
            elif s.startswith("``", i):
                out.append("“")
                i += 2
            elif s.startswith("''", i):
                out.append("”")
                i += 2
            elif c == "{" and (group := self.switch_group(i)) is not None:
                out.append(tex_to_text(group[0]))
                i = group[1]
            elif c == "-" and i == self.last_math_end and s.startswith("$", i + 1):
                out.append("–")
                i += 1
            else:
                out.append(c)
                i += 1
        return "".join(out)

    def switch_group(self, i: int) -> tuple[str, int] | None:
        """{\\em x} -> ("x", end) when the group starts with a font switch."""
        s = self.s
        if not s.startswith("\\", i + 1):
            return None
        name, after = read_name(s, i + 2)
        if name not in symbol_tables().font_switches:
            return None
        group = read_group(s, i)
        if group is None:
            return None
        return group[0][after - i - 1 :].lstrip(), group[1]

    def math(self, i: int) -> int:
        s = self.s
        opener = "$$" if s.startswith("$$", i) else "$"
        end = find_math_end(s, i + len(opener), opener)
        if end < 0 or end == i + len(opener):
            # A lone dollar is a dollar.
            self.out.append(opener)
            return i + len(opener)
        return self.emit_math(i, i + len(opener), end, end + len(opener))

    def emit_math(self, start: int, content_start: int, content_end: int, end: int) -> int:
        try:
            converted = _math(self.s[content_start:content_end])
        except Unconvertible:
            converted = self.s[start:end]
        self.out.append(converted)
        self.last_math_end = end
        return end

    def command(self, i: int) -> int:
        s, out, t = self.s, self.out, symbol_tables()
        name, j = read_name(s, i + 1)
        if name in ("(", "["):
            closer = "\\)" if name == "(" else "\\]"
            end = find_math_end(s, j, closer)
            if end >= 0:
                return self.emit_math(i, j, end, end + 2)
            out.append(s[i:j])
            return j
        if name in t.text_escapes:
            out.append(t.text_escapes[name])
            return j
        if name in t.text_accents:
            k = skip_spaces(s, j) if name.isalpha() else j
            group = read_group(s, k)
            if group is not None:
                out.append(accent(tex_to_text(group[0]), t.text_accents[name]))
                return group[1]
            if k < len(s) and s[k] not in "\\{}$ \t\n":
                out.append(accent(s[k], t.text_accents[name]))
                return k + 1
            out.append(s[i:j])
            return j
        if name in t.citations:
            k = j
            if k < len(s) and s[k] == "*":
                k += 1
            while k < len(s) and s[k] == "[":
                close = s.find("]", k)
                if close < 0:
                    break
                k = close + 1
            group = read_group(s, k)
            if group is None:
                out.append(s[i:j])
                return j
            # "policy \cite{x}." -> "policy."
            while out and out[-1] in (" ", "~", "\u00a0"):
                out.pop()
            return group[1]
        if name in t.text_wrappers or name in ("footnote", "href"):
            group = read_group(s, skip_spaces(s, j))
            if group is None:
                out.append(s[i:j])
                return j
            if name == "href":
                text = read_group(s, skip_spaces(s, group[1]))
                if text is None:
                    out.append(s[i:j])
                    return j
                out.append(f"{tex_to_text(text[0])} ({group[0]})")
                return text[1]
            inner = group[0] if name == "url" else tex_to_text(group[0])
            if name == "footnote":
                inner = f" ({inner})" if out and not out[-1].isspace() else f"({inner})"
            out.append(inner)
            return group[1]
        if name in t.text_symbols or name in t.symbols:
            # \i, \o, \l, \L, ... are only themselves before a non-letter.
            out.append(t.text_symbols.get(name) or t.symbols[name])
            # "\ss{}" and "\LaTeX{}": the empty group only ends the name.
            if s.startswith("{}", j):
                return j + 2
            return j
        # Unknown: keep the command exactly as written; its arguments follow as text.
        out.append(s[i:j])
        return j


def _math(m: str) -> str:
    """Readable text for a math span's content; Unconvertible if we cannot."""
    out: list[str] = []
    i = 0
    while i < len(m):
        c = m[i]
        if c == "\\":
            name, j = read_name(m, i + 1)
            i = _math_command(m, name, j, out)
        elif c in "^_":
            arg, i = _math_arg(m, i + 1)
            out.append(script(arg, c))
        elif c in "{}":
            # Grouping braces are invisible.
            i += 1
        elif c == "~":
            out.append(" ")
            i += 1
        elif c == "'":
            out.append("′")
            i += 1
        elif c == "&" or c == "#":
            raise Unconvertible
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    return " ".join(text.split()) if text.strip() else text


def _math_arg(m: str, i: int) -> tuple[str, int]:
    """The converted argument at m[i]: a {group}, a \\command or one character."""
    i = skip_spaces(m, i)
    if i >= len(m):
        raise Unconvertible
    if m[i] == "{":
        group = read_group(m, i)
        if group is None:
            raise Unconvertible
        return _math(group[0]), group[1]
    if m[i] == "\\":
        name, j = read_name(m, i + 1)
        out: list[str] = []
        end = _math_command(m, name, j, out)
        return "".join(out), end
    if m[i] == "}":
        raise Unconvertible
    return m[i], i + 1


def _math_command(m: str, name: str, j: int, out: list[str]) -> int:
    """Append the reading of \\name (arguments start at m[j]); return the next index."""
    t = symbol_tables()
    if name in t.math_spaces:
        out.append(t.math_spaces[name])
        return j
    if name in t.math_escapes:
        out.append(t.math_escapes[name])
        return j
    if name in t.relations:
        # TeX spaces relations itself ("x\\sim p" reads "x ∼ p"); runs collapse later.
        out.append(f" {t.relations[name]} ")
        return j
    if name in t.symbols:
        symbol = t.symbols[name]
        # Operator names are words: keep them apart from a following letter.
        if symbol.isalpha() and symbol.isascii() and j < len(m) and m[j].isalnum():
            symbol += " "
        out.append(symbol)
        return j
    if name in t.delimiter_sizes or name in t.math_declarations:
        return j
    if name in t.math_text_wrappers:
        group = read_group(m, skip_spaces(m, j))
        if group is None:
            raise Unconvertible
        out.append(tex_to_text(group[0]))
        return group[1]
    if name in t.math_wrappers:
        arg, end = _math_arg(m, j)
        out.append(arg)
        return end
    if name in t.math_alphabets:
        arg, end = _math_arg(m, j)
        style = t.math_alphabets[name]
        out.append(styled(arg, style, t.letterlike.get(style, {})))
        return end
    if name in t.math_accents:
        arg, end = _math_arg(m, j)
        if len(arg) != 1:
            raise Unconvertible
        out.append(accent(arg, t.math_accents[name]))
        return end
    if name in ("frac", "dfrac", "tfrac"):
        numerator, k = _math_arg(m, j)
        denominator, end = _math_arg(m, k)
        out.append(f"{operand(numerator)}/{operand(denominator)}")
        return end
    if name == "sqrt":
        if j < len(m) and m[j] == "[":
            raise Unconvertible
        arg, end = _math_arg(m, j)
        out.append("√" + operand(arg))
        return end
    raise Unconvertible
