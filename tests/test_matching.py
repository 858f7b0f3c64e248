"""Keyword matching (worker/digest/matching.py, selection.py, highlight.py): every rule
of the syntax, on tables of small papers, then on the sample digest's 66 papers and the real 1,504-item day."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.models import Paper
from worker.arxiv.feeds import parse_feed
from worker.digest.highlight import highlight_spans
from worker.digest.matching import (
    KeywordError,
    Query,
    normalize_keyword_line,
    parse_keyword,
)
from worker.digest.selection import match_papers

DATA = Path(__file__).resolve().parent / "data"
DEMO = Path(__file__).resolve().parents[1] / "newsletter" / "data" / "demo_2026-05-29.json"
RL = "reinforcement learning"


@dataclass
class Item:
    title: str = ""
    abstract: str = ""
    authors: list[str] = field(default_factory=lambda: ["Ada Lovelace"])
    categories: list[str] = field(default_factory=lambda: ["cs.LG"])
    arxiv_id: str = "2411.00001"


def matches(line: str, **paper) -> bool:
    return match_papers([Item(**paper)], [line])[line] == {"2411.00001"}


PHRASES = [
    # (keyword line, title, abstract, matches?)
    ("reinforcement learning", "Reinforcement Learning for Robots", "", True),
    ("REINFORCEMENT LEARNING", "", "we use reinforcement learning.", True),
    ("reinforcement learning", "", "Deep reinforcement learning (RL) works", True),
    # word boundaries
    ("learning", "Relearning to walk", "", False),
    ("learning", "Machine-learning for physics", "", True),
    ("learning", "", "learning_rate schedules", True),
    ("learn", "Learning to walk", "", False),
    ("learning", "Learned optimizers", "", False),
    ("machine learning", "Machine-learning potentials", "", True),
    ("machine learning", "Quantum machine learnings", "", True),
    ("net", "A network of ResNets", "", False),
    # the last word's regular plural, and only that
    ("policy", "Diffusion policies", "", True),
    ("model", "Language models", "", True),
    ("model", "Modelling language", "", False),
    ("search", "Tree searches", "", True),
    ("box", "Bounding boxes", "", True),
    ("class", "Equivalence classes", "", True),
    ("key", "Public keys", "", True),
    ("key", "Public keies", "", False),
    ("LLM", "LLMs as judges", "", True),
    ("diffusion policy", "Diffusions policy", "", False),
    ("policies", "A diffusion policy", "", False),
    # hyphens, underscores, dashes and runs of whitespace are one separator
    ("diffusion-policy", "A diffusion policy", "", True),
    ("diffusion policy", "A diffusion-policy baseline", "", True),
    ("diffusion policy", "", "diffusion_policy", True),
    ("diffusion policy", "", "diffusion \n\t  policy", True),
    ("diffusion policy", "", "diffusion\u2013policy and diffusion -- policy", True),
    ("diffusion_policy", "Diffusion Policy", "", True),
    ("bayes theorem", "", "Bayes' theorem", True),
    # other punctuation ends a phrase; so do the ends of title and abstract
    ("reinforcement learning", "", "We study reinforcement. Learning is", False),
    ("reinforcement learning", "", "reinforcement, learning", False),
    ("reinforcement learning", "", "reinforcement (learning)", False),
    ("reinforcement learning", "Safe reinforcement", "learning is hard", False),
    ("reinforcement learning", "", "learning reinforcement", False),
    # TeX markup around words does not stop a match
    ("reinforcement learning", "", r"we use \textbf{reinforcement learning} here", True),
    ("reinforcement learning", "", r"we use {\em reinforcement} learning here", True),
    ("reinforcement learning", "", r"\emph{Reinforcement}~\textit{Learning}", True),
    ("diffusion policy", "", r"guided diffusion \textbf{P}olicy \textbf{O}ptimization", True),
    ("alpha-stable", "", r"$\alpha$-stable processes", True),
    ("α-stable", "", r"$\alpha$-stable processes", True),
    ("alpha stable", "", "α-stable processes", True),
    ("epsilon greedy", "", r"$\varepsilon$-greedy", True),
    ("godel", "", r"G\"{o}del's theorem", True),
    ("Gödel", "", r"G\"odel's theorem", True),
    ("64", "", r"up to 64\% fewer", True),
    ("1.5", "", r"by $1.5$-$2.2\times$", True),
    ("textbf", "", r"\textbf{bold}", False),
    # unicode: case and accents do not matter
    ("Schrödinger equation", "", "the Schrodinger equation", True),
    ("schrodinger equation", "", "THE SCHRÖDINGER EQUATION", True),
    ("schrödinger", "", "Schro\u0308dinger", True),
    ("naive bayes", "Naïve Bayes über alles", "", True),
    ("straße", "", "STRASSE", True),
    ("强化学习", "", "基于 强化学习 的方法", True),
    ("diffusion policy", "🤖 Über diffusion policies ✓", "", True),
    # digits
    ("gpt 4", "GPT-4 is here", "", True),
    ("redux 2.0", "", "MMLU-Redux 2.0, GPQA", True),
    ("redux 2", "", "MMLU-Redux 2.0, GPQA", False),
    ("M2R", "", "We propose M2R.", True),
]


@pytest.mark.parametrize(("line", "title", "abstract", "expected"), PHRASES)
def test_phrase(line, title, abstract, expected):
    assert matches(line, title=title, abstract=abstract) is expected


OPERATORS = [
    # (keyword line, paper fields, matches?)
    # exact phrases: no plural, but case and separators still do not matter
    ('"diffusion policy"', {"abstract": "Diffusion-Policy baselines"}, True),
    ('"diffusion policy"', {"abstract": "diffusion policies"}, False),
    ('"reinforcement learning" "diffusion policy"', {"abstract": "reinforcement learning"}, False),
    (
        '"reinforcement learning" "diffusion policy"',
        {"title": "diffusion policy", "abstract": "and reinforcement learning"},
        True,
    ),
    # plain words around operators: each run of words is a phrase, all ANDed
    ("reinforcement -survey learning", {"title": "reinforcement for robots"}, False),
    ("reinforcement -survey learning", {"title": "learning for reinforcement"}, True),
    # exclusions
    ("reinforcement learning -survey", {"title": "A survey of reinforcement learning"}, False),
    ("reinforcement learning -survey", {"title": "Surveys of reinforcement learning"}, False),
    ("reinforcement learning -survey", {"title": "Reinforcement learning for robots"}, True),
    ("reinforcement learning -survey", {"title": "Reinforcement learning, surveyed"}, True),
    ('reinforcement learning -"language model"', {"abstract": RL + " for a language model"}, False),
    ('reinforcement learning -"language model"', {"abstract": RL + " for language models"}, True),
    (
        'reinforcement learning -"language model"',
        {"abstract": RL + " with a language. Model"},
        True,
    ),
    # categories: any of the paper's, subcategory or whole archive
    ("cat:cs.RO", {"categories": ["cs.LG", "cs.RO"]}, True),
    ("cat:cs.RO", {"categories": ["cs.LG"]}, False),
    ("cat:CS.ro", {"categories": ["cs.RO"]}, True),
    ("Cat:cs.RO AU:levine", {"categories": ["cs.RO"], "authors": ["S. Levine"]}, True),
    ("cat:cs.R", {"categories": ["cs.RO"]}, False),
    ("cat:cs", {"categories": ["cs.RO"]}, True),
    ("cat:cs", {"categories": ["stat.ML", "cs.LG"]}, True),
    ("cat:cs", {"categories": ["stat.ML"]}, False),
    ("cat:math", {"categories": ["math-ph"]}, False),
    ("cat:math", {"categories": ["math.AP"]}, True),
    ("cat:math-ph", {"categories": ["math-ph", "math.MP"]}, True),
    ("cat:math-ph", {"categories": ["math.MP"]}, False),
    ("cat:astro-ph", {"categories": ["astro-ph.GA"]}, True),
    ("cat:cond-mat.mes-hall", {"categories": ["cond-mat.mes-hall"]}, True),
    ("cat:cond-mat.mes-hall", {"categories": ["cond-mat.str-el"]}, False),
    ("cat:hep-th", {"categories": ["hep-ph"]}, False),
    ("cat:cs.RO cat:cs.LG", {"categories": ["cs.RO"]}, False),
    ("cat:cs.RO cat:cs.LG", {"categories": ["cs.LG", "cs.RO"]}, True),
    ("reinforcement learning cat:cs.RO", {"title": "reinforcement learning"}, False),
    (
        "reinforcement learning cat:cs.RO",
        {"title": "reinforcement learning", "categories": ["cs.RO"]},
        True,
    ),
    # authors: whole words of one name; case and accents do not matter
    ("au:Levine", {"authors": ["Sergey Levine"]}, True),
    ("au:levine", {"authors": ["Chelsea Finn", "Sergey Levine"]}, True),
    ('au:"Sergey Levine"', {"authors": ["Sergey Levine"]}, True),
    ('au:"sergey levine"', {"authors": ["Chelsea Finn", "Sergey Levine"]}, True),
    ('au:"Levine Sergey"', {"authors": ["Sergey Levine"]}, False),
    ('au:"Chelsea Levine"', {"authors": ["Chelsea Finn", "Sergey Levine"]}, False),
    ("au:Lev", {"authors": ["Sergey Levine"]}, False),
    ("au:Smith", {"authors": ["Jane Smithson"]}, False),
    ("au:Muller", {"authors": ["Klaus-Robert Müller"]}, True),
    ('au:"Klaus Robert Müller"', {"authors": ["Klaus-Robert Müller"]}, True),
    ('au:"J. Smith"', {"authors": ["J. Smith"]}, True),
    ('au:"J Smith"', {"authors": ["J. Smith"]}, True),
    ("au:O'Brien", {"authors": ["Mary O’Brien"]}, True),
    ("au:Levine cat:cs.RO", {"authors": ["Sergey Levine"], "categories": ["cs.LG"]}, False),
    ("au:Levine diffusion", {"authors": ["Sergey Levine"], "title": "Diffusion"}, True),
    ("au:Levine", {"title": "Levine", "authors": ["Ada Lovelace"]}, False),
    ("Lovelace", {"title": "Notes", "authors": ["Ada Lovelace"]}, False),
]


@pytest.mark.parametrize(("line", "paper", "expected"), OPERATORS)
def test_operators(line, paper, expected):
    assert matches(line, **paper) is expected


SYNTAX_ERRORS = [
    # (keyword line, part of the message)
    ("", "empty"),
    ("   ", "empty"),
    ("!!!", "no letters or digits"),
    ("---", "no letters or digits"),
    ('"diffusion policy', "quote is not closed"),
    ('diffusion "policy', "quote is not closed"),
    ('diffusion"policy"', "Quotes go around a whole phrase"),
    ('"diffusion"policy', "Quotes go around a whole phrase"),
    ('""', "no letters or digits"),
    ('robots ""', '“""” needs a word or a phrase'),
    ("robots -", "“-” needs a word or a phrase"),
    ("--survey robots", "single “-”"),
    ("-survey", "not only exclusions"),
    ('-"a survey" -review', "not only exclusions"),
    ("cat:", "“cat:” needs a value, e.g. cat:cs.RO"),
    ("au:", "“au:” needs a value"),
    ('au:""', "“au:” needs a value"),
    ("xx:foo", "Unknown operator “xx:”"),
    ("title:diffusion", "Unknown operator “title:”"),
    ("-cat:cs.RO robots", "excludes words and phrases, not cat:"),
    ("-au:Levine robots", "excludes words and phrases, not au:"),
    ("cat:cs.", "not a category"),
    ("cat:cs.RO.x", "not a category"),
    ("cat:cs_RO", "not a category"),
    ("cat:foo", "arXiv has no archive “foo”"),
    ("cat:CS.foo", None),  # well-formed: matches nothing, but is not an error
    ("cs.RO", "for a category write cat:cs.RO"),
    ("C++", "“+” cannot be matched"),
    ("e.g. robots", "“.” fits only in numbers"),
    (r"\textbf{robots}", "“\\” cannot be matched"),
    ("robots?", "“?” cannot be matched"),
    ("au:x@y", "“@” cannot be part of a name"),
    ("a" * 101, "at most 100 characters"),
    ("x" * 1_000_000, "at most 100 characters"),
    ("robots\x00", "cannot be matched"),
]


@pytest.mark.parametrize(("line", "message"), SYNTAX_ERRORS)
def test_syntax_error(line, message):
    if message is None:
        assert isinstance(parse_keyword(line), Query)
        return
    with pytest.raises(KeywordError) as error:
        parse_keyword(line)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)


VALID = [
    ("reinforcement learning", "reinforcement learning"),
    ("  reinforcement \t  learning ", "reinforcement learning"),
    ("cat:cs.RO", "cat:cs.RO"),
    ('au:"Sergey  Levine"', 'au:"Sergey Levine"'),
    ("\u201cdiffusion policy\u201d -survey", "\u201cdiffusion policy\u201d -survey"),
    ("Schro\u0308dinger", "Schrödinger"),
    ("a" * 100, "a" * 100),
]


@pytest.mark.parametrize(("line", "normalized"), VALID)
def test_valid_line_and_its_normal_form(line, normalized):
    assert normalize_keyword_line(line) == normalized
    assert parse_keyword(line) == parse_keyword(normalized)


@given(st.text(max_size=120))
def test_any_line_parses_or_says_why(line):
    try:
        assert isinstance(parse_keyword(line), Query)
    except KeywordError as error:
        assert str(error)


# Text with the characters that matter: words, separators, punctuation, TeX, unicode.
PIECES = [*"ab -_.,{}$\\\"'~αéöü\u0308强🤖", "\\em ", "\\alpha", "a b"]
TEXTISH = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@given(TEXTISH, st.lists(st.sampled_from(["a", "ab", "a b", '"ab a"', "b -a", "alpha"])))
def test_highlight_spans_are_sorted_disjoint_and_inside_the_text(text, lines):
    spans = highlight_spans(text, lines)
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_typographic_quotes_are_quotes():
    assert parse_keyword("\u201cdiffusion policy\u201d") == parse_keyword('"diffusion policy"')


HIGHLIGHTS = [
    # (text, keyword lines, highlighted substrings)
    (
        "We use Reinforcement-Learning and diffusion policies.",
        ["reinforcement learning", "diffusion policy"],
        ["Reinforcement-Learning", "diffusion policies"],
    ),
    (r"\textbf{reinforcement learning} rocks", [RL], [RL]),
    (r"{\em reinforcement} learning", ["reinforcement learning"], ["reinforcement} learning"]),
    (
        "🤖 Über naïve Bayes für Schrödinger",
        ["naive bayes", "schrodinger"],
        ["naïve Bayes", "Schrödinger"],
    ),
    ("强化学习 🤖 reinforcement learning", ["reinforcement learning"], ["reinforcement learning"]),
    ("α-stable processes", ["alpha-stable process"], ["α-stable processes"]),
    ("reinforcement learning", ["reinforcement learning", "learning"], ["reinforcement learning"]),
    ("deep learning", ["deep", "learning"], ["deep", "learning"]),
    ("A survey of reinforcement learning", [RL + " -survey"], [RL]),
    ("policies of diffusion policies", ['"diffusion policy"'], []),
    ("Relearning, learning.", ["learning"], ["learning"]),
    ("Robots in cs.RO by Levine", ["cat:cs.RO", "au:Levine"], []),
    ("robots", ["robots?", "C++"], []),
    ("", ["robots"], []),
]


@pytest.mark.parametrize(("text", "lines", "expected"), HIGHLIGHTS)
def test_highlight_spans(text, lines, expected):
    spans = highlight_spans(text, lines)
    assert [text[start:end] for start, end in spans] == expected


def test_distinct_lines_are_keys_and_invalid_lines_match_nothing():
    papers = [Item(title="robots", arxiv_id="1"), Item(title="robot arms", arxiv_id="2")]
    result = match_papers(papers, ["robot", "robot", "C++", "cat:cs"])
    assert result == {
        "robot": frozenset({"1", "2"}),
        "C++": frozenset(),
        "cat:cs": frozenset({"1", "2"}),
    }
    assert match_papers([], ["robot"]) == {"robot": frozenset()}
    assert match_papers(papers, []) == {}


def test_orm_paper_rows_fit():
    paper = Paper(
        arxiv_id="2411.00002",
        title="Diffusion policies",
        abstract="",
        authors=["Sergey Levine"],
        categories=["cs.RO"],
    )
    lines = ["diffusion policy", "au:Levine cat:cs", "cat:math"]
    assert match_papers([paper], lines) == {
        "diffusion policy": {"2411.00002"},
        "au:Levine cat:cs": {"2411.00002"},
        "cat:math": frozenset(),
    }


def test_sample_digest_splits_65_and_2():
    papers = [
        Item(**{k: p[k] for k in ("arxiv_id", "title", "abstract", "authors", "categories")})
        for p in json.loads(DEMO.read_text())["papers"]
    ]
    assert len(papers) == len({p.arxiv_id for p in papers}) == 66
    result = match_papers(papers, ["reinforcement learning", "diffusion policy"])
    assert len(result["reinforcement learning"]) == 65
    assert result["diffusion policy"] == {"2605.30056", "2605.29937"}
    assert result["reinforcement learning"] & result["diffusion policy"] == {"2605.30056"}
    assert result[RL] | result["diffusion policy"] == {p.arxiv_id for p in papers}


@pytest.fixture(scope="module")
def day():
    """The real 1,504 items of all of arXiv on listing date 2024-11-28."""
    items = parse_feed((DATA / "rss_all-archives_2024-11-28.xml").read_bytes()).items
    assert len(items) == 1504
    return items


REFERENCE_KEYWORDS = [
    "reinforcement learning",
    "diffusion model",
    "language model",
    "neural network",
    "dark matter",
    "black hole",
    "graph",
    "transformer",
    "quantum",
    "large language model",
    "machine learning",
    "deep learning",
    "gaussian process",
    "phase transition",
    "robot",
    "magnetic field",
    "optimal control",
    "state of the art",
    "data",
    "time series",
]


def reference_match(keyword: str, text: str) -> bool:
    """A plain regex per keyword: what the automaton must agree with on ASCII keywords."""
    text = re.sub(r"\\[A-Za-z]+", " ", text).replace("{", "").replace("}", "").replace("$", " ")
    words = keyword.split()
    words[-1] += "(?:s|es)?" if not words[-1].endswith("y") else ""
    separator = r"[\s\-_'\u2010-\u2015\u2019]+"
    return re.search(rf"(?<![^\W_]){separator.join(words)}(?![^\W_])", text, re.I) is not None


def test_real_day_agrees_with_a_plain_regex_per_keyword(day):
    result = match_papers(day, REFERENCE_KEYWORDS)
    for keyword in REFERENCE_KEYWORDS:
        expected = {i.arxiv_id for i in day if reference_match(keyword, f"{i.title}\n{i.abstract}")}
        assert result[keyword] == expected, keyword
    assert 20 < len(result["reinforcement learning"]) < len(result["language model"]) < 200
    assert len(result["data"]) > 300


def test_real_day_categories_and_authors(day):
    result = match_papers(day, ["cat:cs", "cat:cs.LG", "cat:math", "cat:math-ph", "au:Li"])
    for line, keep in [
        ("cat:cs", lambda i: any(c.startswith("cs.") for c in i.categories)),
        ("cat:cs.LG", lambda i: "cs.LG" in i.categories),
        ("cat:math", lambda i: any(c.startswith("math.") for c in i.categories)),
        ("cat:math-ph", lambda i: "math-ph" in i.categories),
        ("au:Li", lambda i: any("Li" in re.split(r"[\s\-]+", a) for a in i.authors)),
    ]:
        assert result[line] == {i.arxiv_id for i in day if keep(i)}, line
        assert result[line], line


def test_real_day_highlights_agree_with_matches(day):
    lines = ["reinforcement learning", "diffusion model", "black hole", '"neural network"']
    result = match_papers(day, lines)
    for item in day:
        for line in lines:
            spans = highlight_spans(item.title, [line]) + highlight_spans(item.abstract, [line])
            assert bool(spans) == (item.arxiv_id in result[line]), (line, item.arxiv_id)
        spans = highlight_spans(item.abstract, lines)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert all(0 <= start < end <= len(item.abstract) for start, end in spans)
