"""Where a TeX span that starts at a `$` or a backslash ends (pure).

Used by `protect` (worker/translation/placeholders.py) only: it asks for the
end of each math span, command, escape and environment it turns into a
placeholder. Owns which commands take labels (never prose), which take prose,
and how groups, arguments and environments nest.
"""

import re

# Their arguments are labels, keys or addresses: never prose.
REFERENCE_COMMANDS = frozenset(
    "cite citep citet citealp citealt citeauthor citeyear nocite ref eqref autoref "
    "cref Cref pageref label url href includegraphics doi".split()
)
# Their (last) argument is prose: translate it, keep the command around it.
PROSE_COMMANDS = frozenset(
    "textbf textit textsl textsc texttt textrm textsf emph underline footnote "
    "mbox text textup textmd".split()
)
# `\'e`, `\"o`, `\v{r}`: part of a (usually proper) name.
ACCENT_SYMBOLS = frozenset("'\"^`~=.")

_COMMAND_NAME = re.compile(r"[A-Za-z]+\*?")
_BEGIN = re.compile(r"\\begin\{([^{}]*)\}")


def _unescaped_find(text: str, needle: str, start: int) -> int:
    """The next `needle` at or after `start` not preceded by an odd run of backslashes."""
    while True:
        found = text.find(needle, start)
        if found == -1:
            return -1
        backslashes = 0
        while found - backslashes - 1 >= 0 and text[found - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return found
        start = found + 1


def dollar_math_end(text: str, i: int) -> int:
    """The end of the $...$ or $$...$$ math at `i` (just the dollar if it is never closed)."""
    delimiter = "$$" if text.startswith("$$", i) else "$"
    close = _unescaped_find(text, delimiter, i + len(delimiter))
    if close == -1:
        return i + len(delimiter)  # a lone dollar: keep it, protect nothing else
    return close + len(delimiter)


def backslash_span(text: str, i: int) -> tuple[int, str]:
    """The end of the command, escape or math opener at the backslash at `i`, and its kind:
    "open" for a prose command whose argument stays translatable, else "plain"."""
    n = len(text)
    if i + 1 >= n:
        return i + 1, "plain"
    after = text[i + 1]
    if after in "([":
        close = text.find("\\" + (")" if after == "(" else "]"), i + 2)
        return (close + 2 if close != -1 else i + 2), "plain"
    if after in ACCENT_SYMBOLS:
        return _argument_end(text, i + 2, single_char=True), "plain"
    name_match = _COMMAND_NAME.match(text, i + 1)
    if name_match is None:
        return i + 2, "plain"  # \% \& \_ \\ \, ...
    name = name_match.group().rstrip("*")
    end = name_match.end()
    if name == "begin":
        begin = _BEGIN.match(text, i)
        if begin:
            closed = _environment_end(text, begin.end(), begin.group(1))
            return (closed if closed is not None else begin.end()), "plain"
    if name in REFERENCE_COMMANDS:
        return _arguments_end(text, end), "plain"
    if end < n and text[end] == "{":
        if name in PROSE_COMMANDS:
            return end + 1, "open"
        return _arguments_end(text, end), "plain"
    if len(name) == 1 and name in "vuHcdbtrk" and end < n and not text[end].isspace():
        return _argument_end(text, end, single_char=True), "plain"  # \v r, \c c
    # A bare command: keep the space that ends its name with it.
    if end < n and text[end] == " ":
        end += 1
    return end, "plain"


def _arguments_end(text: str, i: int) -> int:
    """The end of the [..] and {..} groups directly after a command name."""
    while i < len(text) and text[i] in "[{":
        close = _group_end(text, i)
        if close is None:
            return i
        i = close
    return i


def _argument_end(text: str, i: int, single_char: bool) -> int:
    if i >= len(text):
        return i
    if text[i] == "{":
        close = _group_end(text, i)
        return close if close is not None else i
    return i + 1 if single_char and text[i] not in "\\$" else i


def _group_end(text: str, i: int) -> int | None:
    """The index after the bracket closing the `{` or `[` group at `i`, or None."""
    opener = text[i]
    closer = "}" if opener == "{" else "]"
    depth = 0
    j = i
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 2
            continue
        if char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return None


def _environment_end(text: str, i: int, name: str) -> int | None:
    begin, end = f"\\begin{{{name}}}", f"\\end{{{name}}}"
    depth = 1
    while True:
        next_end = text.find(end, i)
        if next_end == -1:
            return None
        next_begin = text.find(begin, i)
        if next_begin != -1 and next_begin < next_end:
            depth += 1
            i = next_begin + len(begin)
            continue
        depth -= 1
        i = next_end + len(end)
        if depth == 0:
            return i
