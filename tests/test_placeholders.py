"""worker.translation.placeholders: TeX, URLs and identifiers survive a translation unchanged.

The property tests run over every title and abstract of a real full day of
arXiv (tests/data/rss_all-archives_2024-11-28.xml, 1,504 items).
"""

import re
from functools import cache

import pytest
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.arxiv.feeds import parse_feed
from worker.translation.placeholders import PlaceholderError, protect, restore


@cache
def real_texts() -> list[str]:
    feed = parse_feed((DATA / "rss_all-archives_2024-11-28.xml").read_bytes())
    return [text for item in feed.items for text in (item.title, item.abstract)]


@cache
def real_texts_with_markup() -> list[str]:
    return [t for t in real_texts() if "$" in t or "\\" in t or "://" in t]


# Independent, simpler descriptions of what must come back verbatim.
ORACLES = {
    "math": re.compile(r"\$\$.+?\$\$|\$(?:[^$\\]|\\.)+\$", re.DOTALL),
    "url": re.compile(r"https?://[^\s{}]+"),
    "reference": re.compile(r"\\(?:cite[a-z]*|ref|eqref|url|href)\{[^{}]*\}"),
}


def must_survive(text: str) -> list[str]:
    spans = []
    for name, pattern in ORACLES.items():
        for match in pattern.finditer(text):
            span = match.group()
            if name == "url":
                span = span.rstrip(".,;:)")
            spans.append(span)
    return spans


PROTECT_CASES = [
    # (source, protected text, originals)
    (
        "by $1.5$-$2.2\\times$ at 64\\% less",
        "by ⟦0⟧-⟦1⟧ at 64⟦2⟧ less",
        ("$1.5$", "$2.2\\times$", "\\%"),
    ),
    ("policy \\cite{shenfeld2025rl}.", "policy ⟦0⟧.", ("\\cite{shenfeld2025rl}",)),
    (
        "we introduce \\textbf{Thoughts-as-Planning}, a framework",
        "we introduce ⟦0⟧Thoughts-as-Planning⟦1⟧, a framework",
        ("\\textbf{", "}"),
    ),
    ("Code: https://github.com/a/b.", "Code: ⟦0⟧.", ("https://github.com/a/b",)),
    ("(see https://x.org/a_(b))", "(see ⟦0⟧)", ("https://x.org/a_(b)",)),
    ("at \\url{https://a.b/c}", "at ⟦0⟧", ("\\url{https://a.b/c}",)),
    ("\\href{https://a.b}{here} it is", "⟦0⟧ it is", ("\\href{https://a.b}{here}",)),
    ("\\(x^2\\) and \\[y\\]", "⟦0⟧ and ⟦1⟧", ("\\(x^2\\)", "\\[y\\]")),
    ("$$E=mc^2$$ holds", "⟦0⟧ holds", ("$$E=mc^2$$",)),
    (
        "so \\begin{align}a&=b\\\\c\\end{align} then",
        "so ⟦0⟧ then",
        ("\\begin{align}a&=b\\\\c\\end{align}",),
    ),
    ("as in arXiv:2411.17700v2.", "as in ⟦0⟧.", ("arXiv:2411.17700v2",)),
    ("see hep-th/9901001 too", "see ⟦0⟧ too", ("hep-th/9901001",)),
    ("doi 10.1103/PhysRevD.110.1, ok", "doi ⟦0⟧, ok", ("10.1103/PhysRevD.110.1",)),
    ("set max_new_tokens and `top_p`", "set ⟦0⟧ and ⟦1⟧", ("max_new_tokens", "`top_p`")),
    ("a {\\rm km} scale", "a ⟦0⟧km⟦1⟧ scale", ("{\\rm ", "}")),
    ("Dvo\\v{r}\\'ak wrote", "Dvo⟦0⟧k wrote", ("\\v{r}\\'a",)),
    ("it costs $5 only", "it costs ⟦0⟧5 only", ("$",)),
    ("keep ⟦0⟧ literal", "keep ⟦0⟧0⟦1⟧ literal", ("⟦", "⟧")),
    # Left alone: model names, TeX quotes, numbers.
    ("GPT-OSS-20B and Qwen2.5-3B", "GPT-OSS-20B and Qwen2.5-3B", ()),
    ("the ``best'' `model'", "the ``best'' `model'", ()),
]


@pytest.mark.parametrize(("source", "text", "originals"), PROTECT_CASES)
def test_protect(source, text, originals):
    protected = protect(source)
    assert (protected.text, protected.originals) == (text, originals)
    assert restore(protected.text, protected) == source


def test_prose_command_keeps_its_argument_translatable_and_paired():
    protected = protect("\\emph{nested \\textbf{bold $x$} text}")
    assert protected.text == "⟦0⟧nested ⟦1⟧bold ⟦2⟧⟦3⟧ text⟦4⟧"
    assert set(protected.pairs) == {(1, 3), (0, 4)}
    assert (
        restore("⟦0⟧嵌套⟦1⟧粗体 ⟦2⟧⟦3⟧文本⟦4⟧", protected) == "\\emph{嵌套\\textbf{粗体 $x$}文本}"
    )


RESTORE_ERRORS = [
    # (translation of "⟦0⟧ and ⟦1⟧⟦2⟧text⟦3⟧", error)
    ("⟦0⟧ 和 ⟦1⟧文本⟦3⟧", "⟦2⟧ lost"),
    ("⟦0⟧ 和 ⟦1⟧⟦2⟧文本⟦3⟧⟦0⟧", "⟦0⟧ duplicated"),
    ("⟦0⟧ 和 ⟦1⟧⟦2⟧文本⟦3⟧⟦7⟧", "⟦7⟧ invented"),
    ("⟦0⟧ 和 ⟦1⟧⟦3⟧文本⟦2⟧", "out of order"),
    ("⟦0⟧ 和 ⟦1⟧⟦2⟧文本⟦3⟧ ⟦4", "altered"),
    ("美元 和 ⟦1⟧⟦2⟧文本⟦3⟧", "⟦0⟧ lost"),
]


@pytest.mark.parametrize(("translation", "error"), RESTORE_ERRORS)
def test_restore_rejects_a_damaged_placeholder(translation, error):
    protected = protect("$x$ and $z$\\textbf{text}")
    assert protected.text == "⟦0⟧ and ⟦1⟧⟦2⟧text⟦3⟧"
    with pytest.raises(PlaceholderError, match=re.escape(error)):
        restore(translation, protected)


def test_restore_accepts_padding_inside_brackets():
    protected = protect("a $x$ b")
    assert restore("甲 ⟦ 0 ⟧ 乙", protected) == "甲 $x$ 乙"


def test_every_real_text_round_trips_and_hides_all_markup():
    texts = real_texts()
    assert len(texts) == 2 * 1504
    for text in texts:
        protected = protect(text)
        assert restore(protected.text, protected) == text
        leftover = protected.text
        assert "$" not in leftover and "\\" not in leftover and "://" not in leftover, text
        for span in must_survive(text):
            assert any(span in original for original in protected.originals), (span, text)


def test_the_sample_texts_have_markup_to_protect():
    # Guards the property test below against an empty or markup-free sample.
    texts = real_texts_with_markup()
    assert len(texts) > 400
    assert sum(1 for t in texts if must_survive(t)) > 300


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_tex_and_urls_survive_any_translation_that_keeps_the_placeholders(data):
    text = data.draw(st.sampled_from(real_texts_with_markup()), label="abstract")
    protected = protect(text)
    count = len(protected.originals)
    order = data.draw(st.permutations(range(count)), label="order")
    position = {k: i for i, k in enumerate(order)}
    for opener, closer in protected.pairs:  # a translation may reorder, but not inside out
        if position[opener] > position[closer]:
            i, j = position[opener], position[closer]
            order[i], order[j] = order[j], order[i]
            position[opener], position[closer] = j, i
    prose = st.text(
        alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF)
        | st.sampled_from(",。 ()")
    )
    pieces = [data.draw(prose, label="prose")]
    for k in order:
        pieces += [f"⟦{k}⟧", data.draw(prose, label="prose")]
    restored = restore("".join(pieces), protected)
    for span in must_survive(text):
        assert span in restored
