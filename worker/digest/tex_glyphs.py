"""Unicode for TeX's marks: accents, sub- and superscripts, math alphabets, fraction operands (pure).

Used by worker/digest/tex.py's math pass (and its text pass, for accents).
`Unconvertible` is how any of them says the math cannot be shown faithfully:
the caller keeps the source.
"""

import unicodedata

from worker.digest.tex_symbols import symbol_tables


class Unconvertible(Exception):
    """Math we cannot render faithfully; the caller keeps the source."""


def accent(base: str, mark: str) -> str:
    if not base:
        return mark
    return unicodedata.normalize("NFC", base[0] + mark + base[1:])


def script(arg: str, kind: str) -> str:
    table = symbol_tables().superscripts if kind == "^" else symbol_tables().subscripts
    if arg and all(ch in table for ch in arg):
        return "".join(table[ch] for ch in arg)
    # x^\top is a transpose; ⊤ inside a longer exponent is not, so it has no table entry.
    if arg == "⊤" and kind == "^":
        return "ᵀ"
    if len(arg) == 1:
        return kind + arg
    return f"{kind}{{{arg}}}" if arg else ""


def styled(arg: str, style: str, exceptions: dict[str, str]) -> str:
    out = []
    for ch in arg:
        if ch in exceptions:
            out.append(exceptions[ch])
            continue
        if not (ch.isascii() and ch.isalpha()):
            raise Unconvertible
        case = "CAPITAL" if ch.isupper() else "SMALL"
        try:
            out.append(unicodedata.lookup(f"MATHEMATICAL {style} {case} {ch.upper()}"))
        except KeyError:
            raise Unconvertible from None
    return "".join(out)


def operand(text: str) -> str:
    """`text` bracketed when it is more than one term."""
    if len(text) <= 1 or text.replace(".", "").isalnum():
        return text
    return f"({text})"
