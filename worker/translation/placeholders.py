"""Keep what must not be translated out of the translator's hands (pure).

The openai backend (worker/translation/openai_backend.py) runs `protect` on each title and
abstract before it is sent to a model, and the answer check
(worker/translation/prompt.py) runs `restore` on the answer. Every span below becomes a
numbered placeholder ⟦n⟧ (brackets that never occur in arXiv metadata and that
models copy verbatim); `restore` puts the spans back and rejects an answer
that lost, duplicated, invented or reordered-out-of-pairs a placeholder, so a
damaged formula or URL never reaches a reader.

Protected, whole:
- TeX math: $...$, $$...$$, \\(...\\), \\[...\\], \\begin{env}...\\end{env};
- reference-like commands with their arguments: \\cite{..}, \\ref{..},
  \\url{..}, \\href{..}{..}, ...; other commands that take a braced argument
  which is not prose (\\mathcal{O}, accents such as \\v{r});
- URLs, DOIs, arXiv identifiers;
- code-like tokens: `backticked` spans without spaces and identifiers with an underscore
  (snake_case). Product and model names (GPT-OSS-20B, Qwen2.5-3B) are left
  alone: models keep Latin names as they are, and fewer placeholders mean
  fewer chances for a model to drop one.
Protected, name only (the argument is prose and is translated): the opening
`\\textbf{`, `\\emph{`, `\\footnote{`, ... and its matching `}` become a pair of
placeholders that must stay in order. Any other command becomes a placeholder
with the space after it (so `{\\rm km}` cannot turn into `\\rmkm`); escapes
such as `\\%` and lone braces and dollars are protected too, and so are the
placeholder brackets themselves, so `restore(protect(t).text) == t` for all t.
"""

import re
from dataclasses import dataclass

from worker.translation.tex_spans import backslash_span, dollar_math_end

OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧
# Models sometimes pad a placeholder with spaces; that is not an alteration.
PLACEHOLDER = re.compile(OPEN + r"\s*(\d+)\s*" + CLOSE)

# TeX-escaped characters (\\_ \\% \\# \\& \\~) are part of a URL written in TeX.
_URL = re.compile(
    r"(?:https?://|ftp://|www\.)(?:[^\s<>\"'{}|\\^`\u27e6\u27e7]|\\[_%#&~])+", re.IGNORECASE
)
_DOI = re.compile(r"10\.\d{4,9}/[^\s<>\"{}\u27e6\u27e7]+")
_ARXIV_ID = re.compile(
    r"(?:arXiv:)?(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?!\w|\.\d)",
    re.IGNORECASE,
)
_SNAKE_CASE = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*_\w*|_+[A-Za-z]\w*")
# Where a protected span may start: a special character, or a word start that
# looks like a URL, DOI, arXiv id or snake_case (so `protect` skips plain prose).
_CANDIDATE = re.compile(
    r"[$\\{}`\u27e6\u27e7]|(?<![\w/.\-])(?:https?://|ftp://|www\.|10\.\d|(?:arXiv:)?\d{4}\."
    r"|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d|\w*_)",
    re.IGNORECASE,
)
_BACKTICK_CODE = re.compile(r"`[^`'\s]+`")


class PlaceholderError(ValueError):
    """A translation lost, duplicated or altered a placeholder."""


@dataclass(frozen=True)
class Protected:
    """A text with placeholders, and what each placeholder stands for."""

    text: str
    originals: tuple[str, ...]
    # (opener, closer) placeholder numbers whose order must survive.
    pairs: tuple[tuple[int, int], ...] = ()


def protect(text: str) -> Protected:
    """Replace TeX, URLs, identifiers and code-like tokens in `text` by ⟦n⟧ placeholders."""
    spans: list[tuple[int, int, str]] = []  # (start, end, kind) kind: plain | open | close
    brace_stack: list[int | None] = []  # index into spans of a prose opener, or None for `{`
    pairs: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        candidate = _CANDIDATE.search(text, i)
        if candidate is None:
            break
        i = candidate.start()
        end, kind = _protected_span(text, i)
        if end is None:
            i += 1
            continue
        if kind == "open":
            brace_stack.append(len(spans))
        elif kind == "lbrace":
            brace_stack.append(None)
            kind = "plain"
        elif kind == "rbrace":
            opener = brace_stack.pop() if brace_stack else None
            if opener is not None:
                pairs.append((opener, len(spans)))
                kind = "close"
            else:
                kind = "plain"
        spans.append((i, end, kind))
        i = end
    return _number(text, spans, pairs)


def _number(
    text: str, spans: list[tuple[int, int, str]], pairs: list[tuple[int, int]]
) -> Protected:
    """Turn spans into placeholders, merging touching plain spans into one."""
    paired = {index for pair in pairs for index in pair}
    number_of: dict[int, int] = {}
    originals: list[str] = []
    out: list[str] = []
    position = 0
    for index, (start, end, _kind) in enumerate(spans):
        out.append(text[position:start])
        mergeable = (
            start == position
            and originals
            and index not in paired
            and index - 1 not in paired
            and out[-1] == ""
        )
        if mergeable:
            originals[-1] += text[start:end]
        else:
            number_of[index] = len(originals)
            originals.append(text[start:end])
            out.append(f"{OPEN}{number_of[index]}{CLOSE}")
        position = end
    out.append(text[position:])
    return Protected(
        text="".join(out),
        originals=tuple(originals),
        pairs=tuple((number_of[a], number_of[b]) for a, b in pairs),
    )


def _protected_span(text: str, i: int) -> tuple[int | None, str]:
    """The end of the protected span starting at `i` (None: not protected) and its kind."""
    char = text[i]
    if char in (OPEN, CLOSE):
        return i + 1, "plain"
    if char == "$":
        return dollar_math_end(text, i), "plain"
    if char == "\\":
        return backslash_span(text, i)
    if char == "{":
        return i + 1, "lbrace"
    if char == "}":
        return i + 1, "rbrace"
    if char == "`":
        # `code`, but not TeX quotes: ``quoted'' and `quoted' are prose.
        code = _BACKTICK_CODE.match(text, i)
        return (code.end(), "plain") if code else (None, "")
    if i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_/.-"):
        return None, ""  # only at the start of a word
    for pattern in (_URL, _DOI, _ARXIV_ID, _SNAKE_CASE):
        match = pattern.match(text, i)
        if match:
            return i + len(_trim_trailing_punctuation(match.group())), "plain"
    return None, ""


def _trim_trailing_punctuation(token: str) -> str:
    """Drop sentence punctuation and an unbalanced closing bracket after a URL or DOI."""
    while token:
        last = token[-1]
        if last in ".,;:!?'\"":
            token = token[:-1]
        elif last == ")" and token.count("(") < token.count(")"):
            token = token[:-1]
        elif last == "]" and token.count("[") < token.count("]"):
            token = token[:-1]
        else:
            break
    return token


def restore(translated: str, protected: Protected) -> str:
    """Put the protected spans back into `translated`; raise PlaceholderError if any was damaged."""
    found = [int(m.group(1)) for m in PLACEHOLDER.finditer(translated)]
    expected = len(protected.originals)
    missing = sorted(set(range(expected)) - set(found))
    if missing:
        raise PlaceholderError(f"placeholder(s) {_names(missing)} lost")
    duplicated = sorted({k for k in found if found.count(k) > 1})
    if duplicated:
        raise PlaceholderError(f"placeholder(s) {_names(duplicated)} duplicated")
    invented = sorted(k for k in found if k >= expected)
    if invented:
        raise PlaceholderError(f"placeholder(s) {_names(invented)} invented")
    order = {k: position for position, k in enumerate(found)}
    for opener, closer in protected.pairs:
        if order[opener] > order[closer]:
            raise PlaceholderError(f"placeholders {_names([opener, closer])} out of order")
    restored = PLACEHOLDER.sub(lambda m: protected.originals[int(m.group(1))], translated)
    # A half-written placeholder ("⟦3" or "3⟧") is an alteration too. The
    # brackets in the restored originals are fine: check only the model's text.
    leftover = PLACEHOLDER.sub("", translated)
    if OPEN in leftover or CLOSE in leftover:
        raise PlaceholderError("a placeholder was altered")
    return restored


def _names(numbers: list[int]) -> str:
    return ", ".join(f"{OPEN}{k}{CLOSE}" for k in numbers)
