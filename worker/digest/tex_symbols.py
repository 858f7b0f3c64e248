"""The symbol tables worker/digest/tex.py converts TeX with, read from data/tex_symbols.json.

Used by worker/digest/tex.py only. Owns the shape of that file: one entry per table,
each with an "about" (what the table is for) and its "entries" (a mapping, or
a list of command names). To teach the converter a new symbol, add it to the
right table in the JSON; a new table needs a field here and a rule in tex.py.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SYMBOLS_FILE = Path(__file__).resolve().parent / "data" / "tex_symbols.json"


@dataclass(frozen=True)
class SymbolTables:
    """The tables of SYMBOLS_FILE by name, lists as sets; see the file for each one's use."""

    text_escapes: dict[str, str]
    text_symbols: dict[str, str]
    text_accents: dict[str, str]
    text_wrappers: frozenset[str]
    font_switches: frozenset[str]
    citations: frozenset[str]
    # Every symbol valid in math: greek | math_symbols | operator_names | relations.
    symbols: dict[str, str]
    relations: dict[str, str]
    math_escapes: dict[str, str]
    math_spaces: dict[str, str]
    math_accents: dict[str, str]
    math_wrappers: frozenset[str]
    math_text_wrappers: frozenset[str]
    math_declarations: frozenset[str]
    delimiter_sizes: frozenset[str]
    math_alphabets: dict[str, str]
    letterlike: dict[str, dict[str, str]]
    superscripts: dict[str, str]
    subscripts: dict[str, str]


@cache
def symbol_tables() -> SymbolTables:
    """Read SYMBOLS_FILE, on first use rather than at import, once per process."""
    with SYMBOLS_FILE.open(encoding="utf-8") as f:
        tables = {name: table["entries"] for name, table in json.load(f).items()}
    # Kept apart in the file for whoever extends them; the converter looks them up as one.
    symbols = tables.pop("greek") | tables.pop("math_symbols") | tables.pop("operator_names")
    # A table missing from the file, or one with no field here, fails every conversion
    # (so the tests catch it) rather than only the rare command that needs it.
    # Read from JSON: each table is a dict or a set, as its field says.
    fields: dict[str, Any] = {
        name: v if isinstance(v, dict) else frozenset(v) for name, v in tables.items()
    }
    return SymbolTables(symbols=symbols | tables["relations"], **fields)
