"""Reading TeX source: balanced groups, command names, spaces, where a math span ends (pure).

Used by worker/digest/tex.py's text and math passes.
"""


def read_group(s: str, i: int) -> tuple[str, int] | None:
    """The content of the balanced {...} starting at s[i], and the index after it."""
    if i >= len(s) or s[i] != "{":
        return None
    depth = 0
    j = i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
        j += 1
    return None


def read_name(s: str, i: int) -> tuple[str, int]:
    """The command name after the backslash at s[i-1]: letters, or one other character."""
    j = i
    while j < len(s) and s[j].isascii() and s[j].isalpha():
        j += 1
    if j == i:
        return (s[i], i + 1) if i < len(s) else ("", i)
    return s[i:j], j


def skip_spaces(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\n":
        i += 1
    return i


def find_math_end(s: str, i: int, closer: str) -> int:
    """Index of the unescaped `closer` ending math opened before s[i], or -1."""
    j = i
    while j < len(s):
        if s.startswith(closer, j):
            return j
        # Skip escapes: \$ does not close $...$.
        j += 2 if s[j] == "\\" else 1
    return -1
