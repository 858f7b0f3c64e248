"""The renderer's needles for a plain keyword line equal the parsed line's (worker/digest/highlight.py).

`line_needles` skips the parser for lines of plain ASCII words; on every
other line it parses. Compared on generated lines, including the ones the
shortcut must not take (operators, quotes, exclusions, punctuation, too long).
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.digest.highlight import line_needles, line_variants, variant_needles
from worker.digest.matching import MAX_LINE_LENGTH

_WORDS = st.sampled_from(
    ["graph", "Graphs", "neural", "NETWORK", "box", "policy", "3d", "x2", "a", "cat", "au"]
    + ["cat:cs.RO", "au:Hinton", "-vision", '"deep', 'learning"', "self-supervised", "2.0"]
    + ["", "é", "α", "gödel", "class", "fly", "boy"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_WORDS, max_size=6), st.sampled_from([" ", "  ", "\t"]))
def test_needles_of_plain_and_other_lines_equal_the_parsed_ones(words, space):
    line = space.join(words)
    assert line_needles.__wrapped__(line) == variant_needles(line_variants.__wrapped__(line))


def test_a_plain_line_past_the_length_limit_has_no_needles():
    line = "graph " * (MAX_LINE_LENGTH // 6 + 1)
    assert line_needles.__wrapped__(line.strip()) == () == line_variants.__wrapped__(line.strip())
    assert line_needles.__wrapped__("Graph Networks") == variant_needles(
        line_variants("graph networks")
    )
