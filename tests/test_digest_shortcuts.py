"""The render's shortcuts give what the plain ways give (worker/digest/text.py, highlight.py, fragments.py).

Each shortcut (short-line and regex wrapping, phrase search in a joined
string, keyword macros filled instead of rendered) is compared with the plain
computation on generated input, including the characters that make them differ
if done wrong: Unicode spaces, double-width characters, separators, markup.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

import emails
from worker.digest.highlight import phrase_tokens, text_tokens
from worker.digest.keyword_pieces import keyword_shape
from worker.digest.matching import tokenize
from worker.digest.pieces import fill_hole, fragment, sized
from worker.digest.text import _tokens, _width, wrap_text

_CHARS = st.sampled_from(
    list("ab cd  \t\nxyz·é中—-.,\x1c\x00~\u00a0\u2009\u200b\u3000ｱＡ") + ["word"]
)


def _plain_wrap(text: str, indent: str, width: int) -> str:
    """wrap_text's loop on every character, as it was before its shortcuts."""
    room = max(width - len(indent), 20)
    lines: list[str] = []
    line, used = "", 0
    for token in _tokens(text):
        size = sum(_width(c) for c in token)
        if token == " ":
            if line:
                line, used = line + " ", used + 1
            continue
        if used + size > room and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        while size > 200:
            lines.append(token[:200])
            token = token[200:]
            size = sum(_width(c) for c in token)
        line, used = line + token, used + size
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(indent + line for line in lines)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_CHARS, max_size=120).map("".join),
    st.sampled_from(["", "    "]),
    st.sampled_from([20, 30, 76]),
)
def test_wrap_text_equals_the_loop_on_every_character(text, indent, width):
    assert wrap_text.__wrapped__(text, indent, width) == _plain_wrap(text, indent, width)


def test_wrap_text_keeps_a_long_word_and_drops_outer_spaces():
    for text in ("x" * 450 + " y " + "z" * 250, " lead and trail ", "", "a\tb"):
        assert wrap_text.__wrapped__(text, "    ", 76) == _plain_wrap(text, "    ", 76)


def _plain_phrase_tokens(words: list[str], variants) -> list[tuple[int, int]]:
    return sorted(
        (i, i + len(v) - 1)
        for v in variants
        for i in range(len(words))
        if tuple(words[i : i + len(v)]) == v
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["graph", "graphs", "neural", "net", ".", "a", "α"]), max_size=40),
    st.lists(
        st.lists(st.sampled_from(["graph", "graphs", "neural", "net", "a", "alpha", "a\x01b"]))
        .filter(bool)
        .map(tuple),
        max_size=4,
    ),
)
def test_phrase_search_in_the_joined_words_finds_every_occurrence(words, variants):
    text = " ".join(words)
    folded = [word for word, _, _ in tokenize(text)]
    assert sorted(phrase_tokens(text_tokens(text), variants)) == _plain_phrase_tokens(
        folded, variants
    )


def test_keyword_macros_filled_equal_rendered_and_wrapping_macros_are_rendered():
    html = emails.macros("digest/parts.html")
    text = emails.macros("digest/parts.txt", wrap=wrap_text)
    for keyword in ("diffusion", 'a & "b" <c>', "ünïcode ’quotes’", "long " * 30):
        for count in (1, 2, 31):
            render = lambda k, count=count: html.section_heading("k-1", k, count)  # noqa: E731
            shape = keyword_shape(render)
            assert shape is not None
            filled = fill_hole(shape, "keyword", sized(str(escape(keyword))))
            assert filled == fragment(render(keyword))
    # The text part wraps the line: no shape, so it is rendered per line.
    assert keyword_shape(lambda k: text.section_heading(k, 3)) is None
    assert keyword_shape(lambda k: text.matched_line((k,))) is None
