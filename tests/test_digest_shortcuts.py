"""The render's shortcuts give what the plain ways give (worker/digest/text.py, highlight.py, fragments.py).

Each shortcut (short-line, regex and word-by-word wrapping, phrase search in
a joined string and by a shared prefix, keyword macros filled instead of
rendered, wrapping text macros filled where the line does not wrap, the
header's counts as holes, links escaped without Markup, braces trimmed only
where a word has one, sections kept as they are when all their papers are on
the day) is compared with the plain computation on generated input, including
the characters that make them differ if done wrong: Unicode spaces,
double-width characters, separators, markup.
"""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape
from test_digest import make_paper

import emails
from newsletter.config import load_settings
from newsletter.locales import LOCALES
from worker.digest import highlight
from worker.digest.chrome import COUNTS, DigestChrome
from worker.digest.core import DayDigest
from worker.digest.header import header_dates, header_values, summary_values
from worker.digest.highlight import (
    line_needles,
    line_search,
    needle_tokens,
    phrase_tokens,
    search_tokens,
    text_tokens,
)
from worker.digest.keyword_pieces import (
    KeywordCache,
    fill_line,
    keyword_shape,
    line_shape,
    matched_pieces,
)
from worker.digest.matching import tokenize
from worker.digest.pieces import LRU, escaped, fill, fill_hole, fill_text, fragment, sized
from worker.digest.text import _tokens, _width, limit_lines, wrap_text

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


# Keyword lines: short and long, with spaces at the ends, double-width and
# other non-ASCII characters, a tab, and the probes' own characters.
_LINE_WORDS = st.sampled_from(
    ["diffusion", "graph", " ", "  ", "a&b", "<i>", "é", "中文", "\t", "’", "x" * 30, "·", "%s"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(_LINE_WORDS, max_size=8).map("".join), min_size=1, max_size=3).map(tuple),
    st.sampled_from([1, 2, 31]),
    st.sampled_from(sorted(LOCALES)),
)
def test_text_heading_matched_and_footer_lines_filled_equal_rendered(lines, count, locale):
    html = emails.macros("digest/parts.html", locale)
    text = emails.macros("digest/parts.txt", locale, wrap=wrap_text)
    keywords = KeywordCache(html, text, 10, LRU(100))
    for keyword in lines:
        heading = limit_lines(str(text.section_heading(keyword, count)))
        assert keywords.pieces(keyword).counted(count).heading_text == heading
        assert keywords.pieces(keyword).matched[1] == str(text.matched_line((keyword,)))
        assert keywords.pieces(keyword).footer_text == limit_lines(
            str(text.footer_keyword(keyword))
        )
    assert keywords.matched(lines)[1] == str(text.matched_line(lines))
    assert matched_pieces(html, text, lines, keywords.line_shape) == matched_pieces(
        html, text, lines
    )


def test_text_macros_have_line_shapes_in_english_and_fill_only_lines_that_fit():
    text = emails.macros("digest/parts.txt", wrap=wrap_text)
    heading = line_shape(lambda k: text.section_heading(k, 3))
    matched = line_shape(lambda k: text.matched_line((k,)))
    assert heading is not None and matched is not None
    assert fill_line(heading, "diffusion") == str(text.section_heading("diffusion", 3))
    # Lines that would wrap, or lose a space at an end, are rendered instead.
    for keyword in ("long " * 20 + "x", " lead", "trail ", "中文", ""):
        assert fill_line(heading, keyword) is None
        assert fill_line(matched, keyword) is None
    # Not a text macro that wraps the line at another width than the shape's check.
    narrow = lambda k: wrap_text(f"{k} · 3 papers", "", 30)  # noqa: E731
    assert line_shape(narrow) is None


_LINKS = ("manage_url", "unsubscribe_url", "one_click_url", "view_url", "feed_url")


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 400),
    st.one_of(st.just(None), st.integers(0, 400)),
    st.sampled_from(sorted(LOCALES)),
    st.booleans(),
    st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York"]),
)
def test_header_counts_filled_equal_rendered(papers, full, locale, full_page, timezone):
    """The text skeleton and the header line with their counts filled in, as rendered with them."""
    full = papers if full is None else min(full, papers)
    generated = datetime(2024, 11, 28, 6, 0, tzinfo=UTC)
    dates = header_dates(date(2024, 11, 28), ZoneInfo(timezone), timezone, generated, None, locale)
    header = header_values(dates, papers, full, locale)
    html = emails.macros("digest/parts.html", locale)
    chrome = DigestChrome(html, emails.macros("digest/parts.txt", locale), locale, LRU(100))
    values = {name: f"https://digest.example/{name}" for name in _LINKS}
    values |= {"entries": "<entries>", "keyword_list": "<keyword_list>"}
    values |= {name: str(header[name]) for name in COUNTS}
    text: list[str] = []
    piece = chrome.text_skeleton(header, full_page)
    assert set(piece.holes) >= {"paper_count", "papers_word"}
    fill_text(text, piece, *(values[hole] for hole in piece.holes))
    links = {name: values[name] for name in _LINKS}
    rendered = emails.render_template(
        "digest/body.txt",
        locale,
        entries="<entries>",
        keyword_list="<keyword_list>",
        links=links,
        full_page=full_page,
        **header,
    )
    assert "".join(text) == limit_lines(rendered)
    summary: list[str] = []
    piece = chrome.summary(summary_values(header))
    size = fill(summary, piece, *(sized(values[hole]) for hole in piece.holes))
    rendered = str(html.summary(view_url=values["view_url"], **summary_values(header)))
    assert "".join(summary) == rendered
    assert size == len(rendered.encode())


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["graph", "graphs", "grapheme", "gr", "neural", "net", "nets", "a", "as"]),
        max_size=40,
    ),
    st.lists(st.sampled_from(["graph", "graphs", "neural net", "net", "a", "gr"]), max_size=3),
)
def test_search_by_shared_prefix_finds_what_each_needle_finds(words, lines):
    """search_tokens (the needles' shared prefix found once per place) against needle_tokens."""
    stream = text_tokens(" ".join(words)).stream
    for line in lines:
        search = line_search.__wrapped__(line)
        assert search[1] == line_needles(line)
        assert sorted(search_tokens(stream, search)) == sorted(needle_tokens(stream, search[1]))
    # A singular and its plural share a prefix; found together, marked alike.
    assert line_search.__wrapped__("graph")[0] == "\x01graph"


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("ab/:?=#&<>\"'é中 %\x00")), max_size=40))
def test_escaped_equals_markupsafe(text):
    assert escaped(text) == str(escape(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["{", "}", "word", "{x}", " ", 'G\\"{o}del', "$a$", ".", "é"])))
def test_text_tokens_trim_braces_only_where_a_word_has_them(parts):
    """text_tokens' word offsets equal _start/_end's on every token (their fast path skips those)."""
    text = "".join(parts)
    tokens = tokenize(text)
    found = text_tokens(text)
    assert list(found.starts) == [highlight._start(text, token) for token in tokens]
    assert list(found.ends) == [highlight._end(text, token) for token in tokens]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "word", "x" * 19, "y" * 75, "z" * 230, "é", "·", "(1)"]), min_size=1
    ),
    st.sampled_from(["", "    "]),
    st.sampled_from([20, 30, 76]),
)
def test_wrap_text_of_single_spaced_words_equals_the_loop(words, indent, width):
    """wrap_text's fill of words between single spaces (_fill_words) against the plain loop."""
    text = " ".join(words)
    assert wrap_text.__wrapped__(text, indent, width) == _plain_wrap(text, indent, width)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["graph", "policy", "x"]),
            st.lists(st.sampled_from(["2401.00001", "2401.00002", "2401.00003", "gone.1"])),
        ),
        max_size=5,
    )
)
def test_current_sections_equal_the_filtered_ones(sections):
    """DayDigest.current's check in C (every paper still on the day) against the filter."""
    papers = {i: make_paper(i) for i in ("2401.00001", "2401.00002", "2401.00003")}
    day = DayDigest.from_rows(date(2024, 11, 28), papers, {}, load_settings({}, ".", dev=True))
    kept = [(keyword, [i for i in ids if i in papers]) for keyword, ids in sections]
    assert day.current(sections) == [(keyword, ids) for keyword, ids in kept if ids]
