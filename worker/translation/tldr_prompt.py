"""What the model is asked for a paper's one-line TL;DR, and whether its answer will do (pure).

Used by worker/translation/tldr.py, which sends `build_tldr_messages` through
the openai backend (worker/translation/openai_backend.py, `ask_in_turns`) and
keeps a paper's TL;DR only if `check_tldr` accepts it; a TranslationError's
message is what the paper's row says instead. The title and abstract are
protected together (worker/translation/placeholders.py), so one numbering
covers both and a TL;DR may quote any formula, link or identifier of the
paper as its placeholder, each at most once.

An answer must be: a JSON entry as asked; one line; between MIN_CHARS and
the language's MAX_CHARS (after placeholders are restored, so a long
formula does not count against the model); free of commentary, Markdown,
HTML and of any TeX the model wrote itself (only placeholders carry TeX,
so the TL;DR has no markup beyond what the paper had); and in the
language asked (mostly its script, for the scripts of
worker/translation/prompt.py's SCRIPTS; mostly Latin letters for English).
"""

import re
from collections.abc import Sequence
from typing import Any

from worker.translation.placeholders import CLOSE, OPEN, PLACEHOLDER, Protected, protect
from worker.translation.prompt import (
    _COMMENTARY,
    SCRIPTS,
    Target,
    TranslationError,
    paper_messages,
)

ENGLISH = Target("en", "English", {})
# Characters of a sane one-line TL;DR: a sentence, not an abstract. A Chinese
# character says about as much as an English word.
MAX_CHARS = {"en": 200, "zh": 80, "zh-tw": 80, "ja": 100, "ko": 120}
DEFAULT_MAX_CHARS = 240
MIN_CHARS = 8
# What the title and abstract are joined with before protecting them together.
_JOIN = "\n\n"

# Markup a model writes on its own: HTML tags and entities, Markdown emphasis,
# links, headings, list marks, code; TeX outside placeholders.
_MARKUP = re.compile(
    r"</?[A-Za-z][^>]*>|&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);|\*\*|__|`|\]\(|^\s*(?:#+|[-*•]|\d+\.)\s"
    r"|[\\$]|(?<![A-Za-z])\{|\}"
)
_LATIN = re.compile(r"[A-Za-z]")


def protect_paper(title: str, abstract: str) -> tuple[Protected, Protected]:
    """The title and abstract with one placeholder numbering across both (title, abstract)."""
    both = protect(f"{title}{_JOIN}{abstract}")
    head, sep, tail = both.text.partition(_JOIN)
    if not sep:  # the join fell inside a protected span: send it all as the abstract
        head, tail = "", both.text
    return Protected(head, both.originals, both.pairs), Protected(tail, both.originals, both.pairs)


def max_chars(language: str) -> int:
    return MAX_CHARS.get(language, DEFAULT_MAX_CHARS)


def build_tldr_messages(
    items: Sequence[tuple[str, Protected, Protected]], target: Target
) -> list[dict[str, str]]:
    """The chat messages asking for a TL;DR of each of `items` (key, title, abstract)."""
    rules = [
        f"You write a one-line TL;DR in {target.name} for each scientific paper given by its "
        "title and abstract: one plain sentence saying what the paper does and what it finds, "
        f"at most {max_chars(target.language)} characters, for a researcher deciding whether "
        "to read it.",
        "Do not repeat the title; do not start with 'This paper' or 'TL;DR'.",
        "Tokens such as ⟦0⟧ stand for formulas, links and identifiers: use one only where the "
        "sentence needs it, copied exactly; never alter one or invent a new one.",
        "Plain text only: no Markdown, no HTML, no TeX of your own, no line breaks.",
    ]
    answer = (
        'Answer with JSON only, no commentary: {"tldrs": [{"id": ..., "tldr": ...}]}, '
        "one entry per paper, same ids."
    )
    return paper_messages(rules, answer, items, target)


def check_tldr(entry: dict[str, Any] | None, source: Protected, target: Target) -> str:
    """The TL;DR of the paper's `entry` in the answer, its placeholders restored; else TranslationError."""
    if entry is None:
        raise TranslationError("missing from the answer")
    answer = entry.get("tldr")
    if not isinstance(answer, str) or not answer.strip():
        raise TranslationError("tldr: empty")
    text = answer.strip()
    if "\n" in text or "\r" in text or "\u2028" in text or "\u2029" in text:
        raise TranslationError("tldr: more than one line")
    if _COMMENTARY.search(text):
        raise TranslationError("tldr: contains commentary")
    prose = PLACEHOLDER.sub(" ", text)
    if OPEN in prose or CLOSE in prose:
        raise TranslationError("tldr: a placeholder was altered")
    markup = _MARKUP.search(prose)
    if markup:
        raise TranslationError(f"tldr: contains markup {markup.group().strip()!r}")
    restored = restore_some(text, source)
    length = len(PLACEHOLDER.sub("", text).strip())
    if not MIN_CHARS <= length <= max_chars(target.language):
        raise TranslationError(
            f"tldr: {length} characters, not {MIN_CHARS}-{max_chars(target.language)}"
        )
    _check_language(prose, target)
    return restored


def restore_some(text: str, source: Protected) -> str:
    """`text` with the placeholders it uses put back: none invented, none twice, pairs whole."""
    found = [int(m.group(1)) for m in PLACEHOLDER.finditer(text)]
    if any(k >= len(source.originals) for k in found):
        raise TranslationError("tldr: placeholder invented")
    if len(set(found)) < len(found):
        raise TranslationError("tldr: placeholder duplicated")
    order = {k: position for position, k in enumerate(found)}
    for opener, closer in source.pairs:
        if (opener in order) != (closer in order):
            raise TranslationError("tldr: half of a placeholder pair")
        if opener in order and order[opener] > order[closer]:
            raise TranslationError("tldr: placeholder pair out of order")
    return PLACEHOLDER.sub(lambda m: source.originals[int(m.group(1))], text)


def _check_language(prose: str, target: Target) -> None:
    letters = sum(1 for c in prose if c.isalpha())
    script = SCRIPTS.get(target.language)
    if script is not None:
        if len(re.findall(script, prose)) < max(1, int(0.3 * letters)):
            raise TranslationError(f"tldr: not in {target.name}")
    elif target.language == "en" and len(_LATIN.findall(prose)) < 0.8 * letters:
        raise TranslationError("tldr: not in English")
