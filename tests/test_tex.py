"""worker/digest/tex.py: TeX made readable, never mangled (cases, real abstracts, properties, tables)."""

import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.arxiv.feeds import parse_feed
from worker.digest import tex
from worker.digest.tex import tex_to_text
from worker.digest.tex_symbols import SYMBOLS_FILE, symbol_tables

DATA = Path(__file__).resolve().parent / "data"
DEMO = Path(__file__).resolve().parent.parent / "newsletter" / "data" / "demo_2026-05-29.json"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # The examples.
        (r"$\alpha$", "α"),
        (r"\textbf{x}", "x"),
        (r"\emph{x}", "x"),
        (r"up to 64\% fewer", "up to 64% fewer"),
        (r"by $1.5$-$2.2\times$ in", "by 1.5–2.2× in"),
        (r"$O(n^2)$", "O(n²)"),
        (r"the base policy \cite{shenfeld2025rl}.", "the base policy."),
        (r"see~\citep[p.~3]{a,b} now", "see now"),
        ("Fig.~3", "Fig. 3"),
        ("``quoted''", "“quoted”"),
        (r"R\&D", "R&D"),
        (r"$\mathbb{R}^n$", "ℝⁿ"),
        # Real spans from the sample digest.
        (r"$m \geq D_i$", "m ≥ Dᵢ"),
        (r"$O(H^2/\sqrt{N})$", "O(H²/√N)"),
        (r"($N \geq 10^3$)", "(N ≥ 10³)"),
        (r"($\text{RLR}^3$)", "(RLR³)"),
        (r"up to $+19.6\%$.", "up to +19.6%."),
        (r"$F_1$", "F₁"),
        (r"$\Leftrightarrow$", "⇔"),
        (r"$+7$pp \texttt{pass@32}", "+7pp pass@32"),
        (r"\textbf{C}ritic-\textbf{G}uided", "Critic-Guided"),
        (r"\textit{hypothesize}", "hypothesize"),
        # More TeX.
        (r"\(a^2\) and \[b_1\]", "a² and b₁"),
        (r"$x_{t+1} = \frac{a+b}{2}$", "xₜ₊₁ = (a+b)/2"),
        (r"$\frac{1}{2}$", "1/2"),
        (r"$\mathcal{L}$ and $\mathcal{O}(1)$", "ℒ and 𝒪(1)"),
        (r"$\mathbb{E}_{x\sim p}[f(x)]$", "𝔼_{x ∼ p}[f(x)]"),
        (r"$e^{i\pi}$", "e^{iπ}"),
        (r"$\sum_{i=1}^{n} x_i$", "∑ᵢ₌₁ⁿ xᵢ"),
        (r"$\hat{x}$, $x^\top y$", "x̂, xᵀ y"),
        (r"Schr\"odinger, G\"{o}del, Erd\H{o}s, \c{c}a", "Schrödinger, Gödel, Erdős, ça"),
        (r"{\em emphasis} and {\bf bold}", "emphasis and bold"),
        (r"\href{https://x.org}{our code}", "our code (https://x.org)"),
        (r"at \url{https://github.com/a_b/c}", "at https://github.com/a_b/c"),
        (r"tasks\footnote{Code soon.}", "tasks (Code soon.)"),
        (r"\LaTeX{} and \ss", "LaTeX and ß"),
        (r"$$E = mc^2$$", "E = mc²"),
        # One case per table of worker/digest/data/tex_symbols.json that the cases above miss.
        (r"$\log n$ and $\log2$", "log n and log 2"),
        (r"$\liminf_{n} a_n$", "lim infₙ aₙ"),
        (r"$\left(\frac{a}{b}\right)$", "(a/b)"),
        (r"$\rm d x$", "d x"),
        (r"$x \| y$, $a\!b\quad c$", "x ‖ y, ab c"),
        (r"$\mathfrak{g}$, $\mathscr{H}$", "𝔤, ℋ"),
        (r"$\vec{v}$", "v⃗"),
        (r"$\text{if } x \in A$", "if x ∈ A"),
        (r"\'{e}t\'e \v{C}ech", "été Čech"),
        (r"$x^{2a}$, $A^\top$", "x²ᵃ, Aᵀ"),
        # A script with a character Unicode has no script form for keeps TeX's braces.
        (r"$x^{\top\top}$, $x_{ab}$", "x^{⊤⊤}, x_{ab}"),
        (r"\o{} and \AA", "ø and Å"),
        # Unknown commands and unconvertible math are kept exactly as written.
        (r"\unknown{arg} stays", r"\unknown{arg} stays"),
        (r"$\foo{x} \leq 1$", r"$\foo{x} \leq 1$"),
        (r"$\sqrt[3]{x}$", r"$\sqrt[3]{x}$"),
        (r"$\overline{AB}$", r"$\overline{AB}$"),
        (r"$\hat{xy}$, $\mathbb{1}$", r"$\hat{xy}$, $\mathbb{1}$"),
        (r"\footnote{Code is coming soon", r"\footnote{Code is coming soon"),
        # Dollars that are not math.
        ("costs $5", "costs $5"),
        ("a $ b", "a $ b"),
        ("$$", "$$"),
        (r"price \$5 and \$6", "price $5 and $6"),
        # No TeX at all: unchanged, including HTML-looking text (escaping is the renderer's job).
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("plain text, 50% of 3-4 items_x ^ y", "plain text, 50% of 3-4 items_x ^ y"),
        ("", ""),
    ],
)
def test_tex_to_text(source, expected):
    assert tex_to_text(source) == expected


def test_deep_nesting_does_not_raise():
    source = "{\\em " * 5000 + "x" + "}" * 5000
    assert isinstance(tex_to_text(source), str)
    assert tex_to_text("$" + "{" * 5000 + "x" + "}" * 5000 + "$")


def test_sample_digest_abstracts_lose_their_markup():
    papers = json.loads(DEMO.read_text(encoding="utf-8"))["papers"]
    for paper in papers:
        text = tex_to_text(paper["abstract"])
        assert not re.search(r"\\(textbf|textit|texttt|cite|times|geq|text)\b", text), paper[
            "arxiv_id"
        ]
        # Only the one unbalanced \footnote{ (as recorded) keeps a backslash.
        assert "\\" not in text or paper["arxiv_id"] == "2605.30219"
        assert "$" not in text, paper["arxiv_id"]


def test_full_day_never_raises_and_leaves_plain_text_alone():
    feed = parse_feed((DATA / "rss_all-archives_2024-11-28.xml").read_bytes())
    assert len(feed.items) == 1504
    plain = 0
    for item in feed.items:
        for source in (item.title, item.abstract):
            text = tex_to_text(source)
            if not re.search(r"[\\$~]|``|''", source):
                plain += 1
                assert text == source
    assert plain > 1000


# Property tests ----------------------------------------------------------------

TEX_ALPHABET = "\\${}^_~`'-abcxyz019 \n%&#()[]"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=TEX_ALPHABET, max_size=80) | st.text(max_size=80))
def test_never_raises(source):
    assert isinstance(tex_to_text(source), str)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200).filter(lambda s: not re.search(r"[\\$~]|``|''", s)))
def test_text_without_tex_is_unchanged(source):
    assert tex_to_text(source) == source


FRAGMENTS = [
    r"$\alpha$",
    r"\textbf{bold}",
    r"\emph{x}",
    r"64\%",
    r"$1.5$-$2.2\times$",
    r"$O(n^2)$",
    r"\cite{key2025}",
    "~",
    "``q''",
    r"\&",
    r"$\mathbb{R}$",
    r"$\foo{x}$",
    r"\unknown",
    r"\unknown{arg}",
    r"{\em e}",
    r"$",
    r"\(",
    r"\footnote{f}",
    r"\"{o}",
    r"$x_{t}^{2}$",
    r"\href{u}{t}",
    r"\\",
    "{",
    "}",
]
WORDS = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(WORDS, st.sampled_from(FRAGMENTS)), min_size=1, max_size=8), WORDS)
def test_words_around_tex_survive_in_order(pieces, last):
    source = " ".join(f"{word} {fragment}" for word, fragment in pieces) + " " + last
    text = tex_to_text(source)
    position = 0
    for word in [word for word, _ in pieces] + [last]:
        found = text.find(word, position)
        assert found >= 0, (word, source, text)
        position = found + len(word)


# The symbol tables ----------------------------------------------------------------


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), sorted(key for key in keys if keys.count(key) > 1)
    return dict(pairs)


def test_symbol_file_tables_are_documented_and_load():
    # json.load would silently keep the last of two equal keys; an edit must not do that.
    tables = json.loads(
        SYMBOLS_FILE.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys
    )
    for name, table in tables.items():
        assert set(table) == {"about", "entries"} and table["about"], name
    # The converter looks these up as one table: a name in two would shadow the other.
    merged = ["greek", "math_symbols", "operator_names", "relations"]
    names = [name for table in merged for name in tables[table]["entries"]]
    assert len(names) == len(set(names))
    assert len(symbol_tables().symbols) == len(names)


def test_symbol_tables_hold_what_the_converter_expects():
    tables = symbol_tables()
    for accents in (tables.text_accents, tables.math_accents):
        assert all(unicodedata.combining(mark) for mark in accents.values())
    for scripts in (tables.superscripts, tables.subscripts):
        assert all(len(key) == 1 and len(value) == 1 for key, value in scripts.items())
    assert set(tables.letterlike) <= set(tables.math_alphabets.values())


# The run of plain characters copied in one slice (tex._PLAIN) -----------------

TEX_WORDS = st.sampled_from(
    [r"\alpha", r"\textbf{", r"{\em ", r"\'e", r"\cite{x}", "$", "$$", "~", "``", "''", "'", "`"]
    + ["{", "}", "-", "--", "^2", "_i", " ", "word", "é", "中", "\n", r"\(", r"\)", r"\%"]
    + [r"\footnote{", r"\url{", "\u00a0", "\t", r"\~{}", r"\textasciitilde{}"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(TEX_WORDS, max_size=30).map("".join) | st.text(alphabet=TEX_ALPHABET, max_size=80))
def test_plain_runs_copied_at_once_equal_the_loop_per_character(source):
    fast = tex.tex_to_text(source)
    plain, tex._PLAIN = tex._PLAIN, re.compile(r"(?!)")  # never matches: one character a turn
    try:
        assert tex.tex_to_text(source) == fast
    finally:
        tex._PLAIN = plain
