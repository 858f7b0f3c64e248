"""worker/digest/core.py and worker/demo/load.py: sections, the rendered email, the demo day.

The digest's parts (worker/digest/fragments.py, assembly.py,
entries.py, layout.py, text.py) are tested through
`DayDigest`, plus the few names they export. tests/test_golden.py holds the
byte-for-byte comparison with the digests of the old single-template renderer.

Rendering runs on real data: the bundled sample listing (66 papers with their
recorded Chinese translations) and the full 1,504-item day of 2024-11-28.
"""

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import func, select

from newsletter import db
from newsletter.config import load_settings
from newsletter.models import (
    AnnounceType,
    ListingDay,
    Paper,
    Translation,
    TranslationStatus,
)
from worker.arxiv.feeds import parse_feed
from worker.arxiv.store import paper_fields
from worker.delivery.messages import build_message
from worker.demo.load import DEMO_LISTING_DATE, load_demo, read_demo
from worker.digest.core import DayDigest, DigestEmail, Reader
from worker.digest.entries import category_names
from worker.digest.highlight import highlight_spans, line_variants, text_tokens
from worker.digest.layout import HTML_BUDGET
from worker.digest.loading import load_day
from worker.digest.marks import escaped_text, highlight
from worker.digest.text import wrap_text

DATA = Path(__file__).resolve().parent / "data"
# Every setting at its default but these, as the digest core reads them.
DEFAULTS = load_settings({}, ".", dev=True)
CONFIG = replace(DEFAULTS, DIGEST_MAX_PER_KEYWORD=25, TRANSLATION_LANGUAGE="zh")
SAMPLE_KEYWORDS = ["reinforcement learning", "diffusion policy"]
GENERATED = datetime(2026, 5, 29, 11, 33, 31, tzinfo=UTC)
LINKS = {
    "manage_url": "http://digest.test/manage/MANAGE-TOKEN",
    "unsubscribe_url": "http://digest.test/unsubscribe/UNSUB-TOKEN",
    "one_click_url": "http://digest.test/unsubscribe/one-click/UNSUB-TOKEN",
    "view_url": "http://digest.test/digest/VIEW-TOKEN",
    "feed_url": "http://digest.test/feed/FEED-TOKEN",
}
ABS_ID = re.compile(
    r"https://arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5}|[a-z-]+(?:\.[A-Z]{2})?/[0-9]{7})"
)


def make_paper(arxiv_id: str, **values) -> Paper:
    fields = {
        "version": 1,
        "title": f"Paper {arxiv_id}",
        "authors": ["A. Author"],
        "categories": ["cs.LG"],
        "abstract": "An abstract.",
        "comments": None,
        "doi": None,
        "journal_ref": None,
        "listing_date": DEMO_LISTING_DATE,
        "announce_type": AnnounceType.NEW,
    }
    fields.update(values)
    return Paper(arxiv_id=arxiv_id, **fields)


@cache
def sample() -> tuple[dict[str, Paper], dict[str, Translation]]:
    """The demo listing as unsaved rows: papers and their recorded translations."""
    papers, translations = {}, {}
    for record in read_demo()["papers"]:
        papers[record["arxiv_id"]] = make_paper(
            record["arxiv_id"],
            title=record["title"],
            authors=record["authors"],
            categories=record["categories"],
            abstract=record["abstract"],
        )
        translations[record["arxiv_id"]] = Translation(
            arxiv_id=record["arxiv_id"],
            version=1,
            language="zh",
            status=TranslationStatus.DONE,
            title=record["zh"]["title"],
            abstract=record["zh"]["abstract"],
        )
    return papers, translations


@cache
def full_day() -> dict[str, Paper]:
    feed = parse_feed((DATA / "rss_all-archives_2024-11-28.xml").read_bytes())
    return {
        item.arxiv_id: Paper(listing_date=feed.feed_date, **paper_fields(item))
        for item in feed.items
    }


def render(
    papers,
    keywords,
    *,
    language="en",
    translations=None,
    max_per_keyword=25,
    timezone="Asia/Shanghai",
    listing_date=DEMO_LISTING_DATE,
    include_replacements=False,
    links=LINKS,
    target="zh",
) -> tuple[list, DigestEmail]:
    """The sections and the email (max_per_keyword None: the web page) of one reader."""
    # The page renders every paper in full whatever the setting (an int: typed, and compiled).
    limit = DEFAULTS.DIGEST_MAX_PER_KEYWORD if max_per_keyword is None else max_per_keyword
    config = replace(DEFAULTS, DIGEST_MAX_PER_KEYWORD=limit, TRANSLATION_LANGUAGE=target)
    day = DayDigest.from_rows(listing_date, papers, translations or {}, config)
    reader = Reader(tuple(keywords), language, timezone, include_replacements)
    sections = day.sections({"reader": reader})["reader"]
    if max_per_keyword is None:
        page = day.render_page(reader, sections, GENERATED, links)
        # The page's text part is never sent; the tests read it for the page's structure.
        rendered = day._render(reader, sections, GENERATED, links, None)
        assert rendered.html == page
        return sections, rendered
    return sections, day.render_email(reader, sections, GENERATED, links)


def ids_in(text: str) -> set[str]:
    return set(ABS_ID.findall(text))


# --- assign_sections -----------------------------------------------------------

TYPES = {
    "2401.00005": AnnounceType.REPLACE,
    "2401.00004": AnnounceType.CROSS,
    "2401.00003": AnnounceType.NEW,
    "2401.00002": AnnounceType.REPLACE_CROSS,
    "2401.00001": AnnounceType.CROSS,
}


@pytest.mark.parametrize(
    ("keywords", "matches", "include_replacements", "expected"),
    [
        # Subscriber's order, not the matcher's; in a section new papers and cross-lists,
        # then replacements, each in relevance order (tests/test_relevance.py): every
        # title matches, 2401.00003 matches both lines, then by id.
        (
            ["b", "a"],
            {"a": {"2401.00003"}, "b": set(TYPES)},
            True,
            [
                ("b", ["2401.00003", "2401.00001", "2401.00004", "2401.00002", "2401.00005"]),
                ("a", ["2401.00003"]),
            ],
        ),
        # Replacements only for subscribers who opted in.
        (["b"], {"b": set(TYPES)}, False, [("b", ["2401.00001", "2401.00003", "2401.00004"])]),
        # A keyword whose only papers are replacements has no section.
        (["a", "b"], {"a": {"2401.00005"}, "b": {"2401.00004"}}, False, [("b", ["2401.00004"])]),
        # Unknown keywords and keywords without papers have no section.
        (["x", "a"], {"a": {"9999.99999", "2401.00001"}}, False, [("a", ["2401.00001"])]),
        ([], {"a": {"2401.00001"}}, False, []),
    ],
)
def test_sections(keywords, matches, include_replacements, expected):
    # Each paper's title holds a made-up word per keyword that should match it.
    papers = {
        arxiv_id: make_paper(
            arxiv_id,
            announce_type=announce_type,
            title=" ".join(["Paper", *(f"kw{k}" for k, ids in matches.items() if arxiv_id in ids)]),
        )
        for arxiv_id, announce_type in TYPES.items()
    }
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, {}, CONFIG)
    reader = Reader(tuple(f"kw{k}" for k in keywords), "en", "UTC", include_replacements)
    sections = day.sections({"r": reader})["r"]
    assert sections == [(f"kw{keyword}", ids) for keyword, ids in expected]
    # Asked again (another page of subscribers), the same answer from the day's cache.
    assert day.sections({"again": reader})["again"] == sections


# --- the sample digest ---------------------------------------------------------


def test_sample_splits_65_2_and_prints_the_shared_paper_once():
    papers, _ = sample()
    # The web page (no limits) shows all 66 in full; the email's limits are tested below.
    sections, rendered = render(papers, SAMPLE_KEYWORDS, max_per_keyword=None)
    assert [(k, len(ids)) for k, ids in sections] == [
        ("reinforcement learning", 65),
        ("diffusion policy", 2),
    ]
    assert len({i for _, ids in sections for i in ids}) == 66
    assert rendered.subject == (
        "arXiv digest · Fri 29 May 2026 · 66 papers: reinforcement learning (65), diffusion policy (2)"
    )
    html, text = rendered.html, rendered.text
    # Every paper in full exactly once, the shared one under its first keyword ...
    assert html.count('id="p-') == 66
    assert html.count('id="p-2605.30056"') == 1
    assert html.index('id="p-2605.30056"') < html.index('id="k-2"')
    assert len(re.findall(r"^\[\d+\] ", text, re.M)) == 66
    # ... and listed by title with a link to it in the later section.
    second = html[html.index('id="k-2"') :]
    assert 'href="#p-2605.30056"' in second
    assert "(above, under “reinforcement learning”)" in second
    entry = html[html.index('id="p-2605.30056"') :]
    entry = entry[: entry.index("</div>\n</div>") if "</div>\n</div>" in entry else 5000]
    assert "matched: reinforcement learning, diffusion policy" in entry
    text_second = text[text.index("diffusion policy · 2 papers") :]
    assert re.search(
        r'Sample-Efficient Diffusion-based[^\[]*?2605\.30056 +\(above, under "reinforcement learning" as \[\d+\]\)',
        text_second,
    )
    assert ids_in(html) == ids_in(text) == {i for _, ids in sections for i in ids}


def test_header_footer_and_entry_details():
    papers, _ = sample()
    _, rendered = render(papers, SAMPLE_KEYWORDS)
    for part in (rendered.html, " ".join(rendered.text.split())):
        assert "Fri 29 May 2026" in part
        # arXiv announced the batch Thursday 20:00 New York time (not Friday, as the sample claimed).
        assert "Thu 28 May 2026, 20:00 UTC-4" in part
        assert "Fri 29 May 2026, 08:00 UTC+8" in part
        assert "Generated" in part and "Fri 29 May 2026, 19:33 UTC+8" in part
        for url in LINKS.values():
            if url != LINKS["one_click_url"]:
                assert url in part
        assert (
            "Computation and Language (cs.CL); Artificial Intelligence (cs.AI); Computers and Society (cs.CY)"
            in part
        )
        assert "https://arxiv.org/pdf/2605.28829" in part
        # TeX is readable in both parts.
        assert "1.5–2.2×" in part and "$1.5$" not in part
        assert "up to 64% fewer" in part
    assert '<mark style="background:#fff3a3">reinforcement learning</mark>' in rendered.html
    assert "<mark" not in rendered.text
    assert "You receive this because you subscribed" in rendered.text
    # Past 25 papers the email lists titles and links to the full digest page.
    # (25 under the first keyword, plus the one new paper of the second.) A third
    # line repeats the first's papers: pointers to those past 25 lead to the page.
    _, rendered = render(papers, [*SAMPLE_KEYWORDS, "learning"])
    assert rendered.html.count('id="p-') == 26
    assert f"{LINKS['view_url']}#p-" in rendered.html
    assert "(full entry: digest page)" in rendered.text


def test_monday_listing_was_announced_sunday():
    papers = {
        "2606.00001": make_paper(
            "2606.00001", title="Reinforcement learning on Monday", listing_date=date(2026, 6, 1)
        )
    }
    _, rendered = render(
        papers, ["reinforcement learning"], listing_date=date(2026, 6, 1), timezone="Europe/Berlin"
    )
    assert "Sun 31 May 2026, 20:00 UTC-4" in rendered.text
    assert "Mon 1 Jun 2026, 02:00 UTC+2" in rendered.text
    assert rendered.subject == "arXiv digest · Mon 1 Jun 2026 · 1 paper: reinforcement learning (1)"


def test_entry_badges_comments_journal_ref_doi_and_authors():
    authors = [f"Author {n}" for n in range(1, 19)]
    papers = {
        "2401.00001": make_paper(
            "2401.00001",
            title="Graph learning",
            authors=authors,
            announce_type=AnnounceType.CROSS,
            comments="12 pages, $3$ figures",
            journal_ref="Phys. Rev. D 1 (2024) 2",
            doi="10.1103/PhysRevD.1.2",
            categories=["stat.ML", "cs.LG", "xx.UNKNOWN"],
        ),
        "2401.00002": make_paper(
            "2401.00002", title="Replaced graph learning", announce_type=AnnounceType.REPLACE_CROSS
        ),
    }
    _, email = render(papers, ["graph learning"], include_replacements=True)
    _, page = render(papers, ["graph learning"], include_replacements=True, max_per_keyword=None)
    assert "Author 10, et al. (18 authors)" in email.html and "Author 11" not in email.html
    assert "Author 18" in page.html and "et al." not in page.html
    for part in (email.html, " ".join(email.text.split())):
        assert "cross-list" in part
        assert "replacement, cross-list" in part
        assert "12 pages, 3 figures" in part
        assert "Phys. Rev. D 1 (2024) 2" in part
        assert "https://doi.org/10.1103/PhysRevD.1.2" in part
        assert "Machine Learning (stat.ML); Machine Learning (cs.LG); xx.UNKNOWN" in part
    assert '<a href="https://doi.org/10.1103/PhysRevD.1.2"' in email.html


def test_category_names_cover_the_taxonomy():
    names = category_names()
    assert len(names) == 155
    assert names["cs.LG"] == "Machine Learning" and names["math.ST"] == "Statistics Theory"
    assert names["hep-th"] == "High Energy Physics - Theory"
    codes = {c for paper in full_day().values() for c in paper.categories}
    # Every category of a real full day has a name.
    assert codes <= set(names)


# --- bilingual -----------------------------------------------------------------


def test_bilingual_shows_chinese_after_english_and_notes_missing_ones():
    papers, translations = sample()
    translations = dict(translations)
    failed = Translation(
        arxiv_id="2605.28829",
        version=1,
        language="zh",
        status=TranslationStatus.FAILED,
        error="lost placeholder",
    )
    stale = Translation(
        arxiv_id="2605.28842",
        version=0,
        language="zh",
        status=TranslationStatus.DONE,
        title="旧",
        abstract="旧版",
    )
    translations["2605.28829"] = failed
    translations["2605.28842"] = stale
    del translations["2605.28860"]
    # Four papers in full: the first and the three without a translation to show.
    shown = {i: papers[i] for i in ("2605.28828", "2605.28829", "2605.28842", "2605.28860")}
    _, rendered = render(
        shown, SAMPLE_KEYWORDS, language="en+zh", translations=translations, max_per_keyword=4
    )
    for part in (rendered.html, rendered.text):
        english = part.index("Micro-Macro Retrieval: Reducing Long-Form")
        chinese = part.index("微观宏观检索:减少大型语言模型中的长形幻觉")
        assert english < chinese
        assert "大型语言模型(LLM)在许多任务中表现出色" in part
        # Failed, stale (other version) and missing translations each get the note
        # (in the digest's 简体中文 chrome).
        assert part.count("今天暂无简体中文译文。") == 3
        assert "旧版" not in part
    # TeX inside the recorded Chinese is readable too.
    _, rendered = render(
        {"2605.30190": papers["2605.30190"]},
        ["reinforcement learning"],
        language="en+zh",
        translations=translations,
    )
    assert "O(H²/√N)" in rendered.text.split("均值场")[1][:40]
    # English subscribers see no Chinese and no note.
    _, english_only = render(papers, SAMPLE_KEYWORDS, translations=translations)
    assert "微观" not in english_only.html and "translation not available" not in english_only.text


def test_the_second_language_is_translation_language():
    """TRANSLATION_LANGUAGE=ja: en+ja readers get the stored Japanese; en+zh is not bilingual."""
    papers, _ = sample()
    config = replace(DEFAULTS, DIGEST_MAX_PER_KEYWORD=25, TRANSLATION_LANGUAGE="ja")
    reader = Reader(tuple(SAMPLE_KEYWORDS), "en+ja", "Asia/Tokyo", False)
    first, second = DayDigest.from_rows(DEMO_LISTING_DATE, papers, {}, config).sections(
        {"r": reader}
    )["r"][0][1][:2]
    japanese = {
        first: ("マイクロ・マクロ検索", "大規模言語モデルの長文幻覚を減らす。"),
        second: ("拡散方策のサンプル効率", "拡散方策による強化学習。"),
    }
    translations = {
        arxiv_id: Translation(
            arxiv_id=arxiv_id,
            version=1,
            language="ja",
            status=TranslationStatus.DONE,
            title=title,
            abstract=abstract,
        )
        for arxiv_id, (title, abstract) in japanese.items()
    }
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, config)
    readers = {
        "ja": reader,
        "zh": Reader(tuple(SAMPLE_KEYWORDS), "en+zh", "Asia/Tokyo", False),
    }
    assert day.is_bilingual(readers["ja"]) and not day.is_bilingual(readers["zh"])
    sections = day.sections(readers)
    ja = day.render_email(readers["ja"], sections["ja"], GENERATED, LINKS)
    page = day.render_page(readers["ja"], sections["ja"], GENERATED, LINKS)
    for html in (ja.html, page):
        assert (
            '<div style="font-size:15px;font-weight:bold" lang="ja">拡散方策のサンプル効率</div>'
            in html
        )
        assert '<p style="margin:6px 0" lang="ja">大規模言語モデルの長文幻覚を減らす。</p>' in html
        assert 'lang="zh"' not in html
        assert "Japanese translation not available today." in html
    assert "拡散方策による強化学習。" in ja.text
    assert "(Japanese translation not available today.)" in ja.text
    assert "Chinese translation" not in ja.html + ja.text
    zh = day.render_email(readers["zh"], sections["zh"], GENERATED, LINKS)
    english = day.render_email(
        Reader(tuple(SAMPLE_KEYWORDS), "en", "Asia/Tokyo", False), sections["zh"], GENERATED, LINKS
    )
    assert zh == english
    assert 'lang="ja"' not in zh.html and "translation not available" not in zh.text


# Text with what escaping and matching care about: words, separators, TeX, &<>"'.
PIECES = [*"ab -_.,{}$\\&<>\"'αé强", "\\em ", "a b", "&amp;"]


@given(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.lists(st.sampled_from(["a", "ab", "a b", '"ab a"', "b -a", "alpha", "amp"]), max_size=3),
)
def test_highlight_on_escaped_text_equals_escaping_the_highlighted_spans(text, lines):
    tokens = text_tokens(text)
    variants = [variant for line in lines for variant in line_variants(line)]
    html, size = highlight(escaped_text(text, tokens), tokens, variants)
    expected, position = [], 0
    for start, end in highlight_spans(text, lines):
        expected += [escape(text[position:start]), '<mark style="background:#fff3a3">']
        expected += [escape(text[start:end]), "</mark>"]
        position = end
    expected.append(escape(text[position:]))
    assert html == "".join(expected)
    assert size == len(html.encode())


# --- email safety ----------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</mj-text><mj-raw><script>alert(2)</script></mj-raw>",
    "{{ links.manage_url }} {% raw %}",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_untrusted_text_is_escaped(hostile):
    papers = {
        "2401.00001": make_paper(
            "2401.00001",
            title=f"Diffusion policy {hostile}",
            abstract=f"A diffusion policy. {hostile}",
            authors=[hostile, "B. Author"],
            comments=hostile,
            journal_ref=hostile,
            doi=f'10.1/x"{hostile}',
        ),
    }
    keywords = ["diffusion policy", hostile]
    _, rendered = render(
        papers,
        keywords,
        language="en+zh",
        translations={
            "2401.00001": Translation(
                arxiv_id="2401.00001",
                version=1,
                language="zh",
                status=TranslationStatus.DONE,
                title=hostile,
                abstract=hostile,
            ),
        },
    )
    html = rendered.html
    assert "<script" not in html and "<img" not in html and "<mj-raw" not in html
    # Shown as text (escaped), in the title, the abstract, the authors and the footer.
    assert html.count(str(escape(hostile))) >= 5
    # Template syntax in data is data: shown, never evaluated.
    assert rendered.text.count(hostile) >= 5
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_text_lines_are_wrapped_and_never_over_998():
    long_word = "x" * 5000
    papers = {
        "2401.00001": make_paper(
            "2401.00001",
            title=f"Diffusion policy {long_word}",
            abstract=f"Diffusion policy. {long_word} " + "word " * 400,
        ),
    }
    _, rendered = render(
        papers,
        ["diffusion policy"],
        language="en+zh",
        translations={
            "2401.00001": Translation(
                arxiv_id="2401.00001",
                version=1,
                language="zh",
                status=TranslationStatus.DONE,
                title="扩散策略" * 100,
                abstract="扩散策略" * 2000,
            ),
        },
    )
    lines = rendered.text.split("\n")
    assert max(len(line.encode()) for line in lines) <= 998
    # Ordinary lines stay readable: at most 76 columns, Chinese counting double.
    for line in lines:
        if "http" not in line and "x" * 100 not in line:
            assert sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in line) <= 76, line


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("a b c", 76, "a b c"),
        ("one two three four", 20, "one two three four"),
        ("aaaa bbbb cccc dddd eeee ffff", 20, "aaaa bbbb cccc dddd\neeee ffff"),
        (
            "see https://example.org/a/very/long/path/that/must/not/break now",
            20,
            "see\nhttps://example.org/a/very/long/path/that/must/not/break\nnow",
        ),
        ("强化学习" * 6, 20, "强化学习强化学习强化\n学习强化学习强化学习\n强化学习"),
        ("", 76, ""),
    ],
)
def test_wrap_text(text, width, expected):
    assert wrap_text(text, width=width) == expected


def test_message_parses_back_with_the_stdlib():
    papers, translations = sample()
    _, rendered = render(papers, SAMPLE_KEYWORDS, language="en+zh", translations=translations)
    message = build_message(
        sender="arXiv digest <digest@digest.test>",
        to="reader@example.org",
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id="<1@digest.test>",
    )
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == rendered.subject
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert text.replace("\r\n", "\n").rstrip("\n") == rendered.text.rstrip("\n")
    assert html.replace("\r\n", "\n").rstrip("\n") == rendered.html.rstrip("\n")
    # Bilingual entries fill the budget: some are shortened, none left out.
    # (The chrome of an English + 简体中文 digest is 简体中文: tests/test_i18n_digest.py.)
    assert ids_in(text) == ids_in(html) and len(ids_in(text)) == 66
    assert "更多：http://digest.test/digest/VIEW-TOKEN#p-" in text
    assert "篇论文，列在摘要网页上" not in text
    assert max(len(line) for line in message.as_bytes().split(b"\r\n")) <= 998


# --- segments ----------------------------------------------------------------


def test_segments_join_to_the_parts_and_share_the_papers_pieces():
    papers, translations = sample()
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, CONFIG)
    readers = {
        "first": Reader(tuple(SAMPLE_KEYWORDS), "en", "Asia/Shanghai", False),
        "second": Reader(("diffusion policy", "reinforcement learning"), "en", "UTC", False),
    }
    sections = day.sections(readers)
    other = {name: url.replace("TOKEN", "OTHER&TOKEN") for name, url in LINKS.items()}
    first = day.render_email(readers["first"], sections["first"], GENERATED, LINKS)
    second = day.render_email(readers["second"], sections["second"], GENERATED, other)
    for email in (first, second):
        assert "".join(email.text_segments) == email.text
        assert "".join(email.html_segments) == email.html
    # The papers both show are the same str objects in both digests (an encoder
    # caches by them), and most of each digest is made of such shared pieces.
    shared = {id(segment) for segment in first.html_segments if len(segment) > 200}
    shared &= {id(segment) for segment in second.html_segments}
    assert len(shared) >= 50
    in_first = {id(segment) for segment in first.html_segments}
    reused = sum(len(s) for s in second.html_segments if id(s) in in_first)
    assert reused > 0.9 * len(second.html)
    text_shared = {id(s) for s in first.text_segments if len(s) > 200}
    assert len(text_shared & {id(s) for s in second.text_segments}) >= 40
    # Each subscriber's links are segments of their own, never inside a shared piece.
    for email, links in ((first, LINKS), (second, other)):
        for segment in email.html_segments:
            for url in links.values():
                if str(escape(url)) in segment:
                    assert segment == str(escape(url))
        for segment in email.text_segments:
            for url in links.values():
                if url in segment:
                    assert segment == url
    assert "MANAGE-OTHER&amp;TOKEN" in second.html and "MANAGE-OTHER&TOKEN" in second.text
    assert "OTHER" not in first.html + first.text
    # The same digest rendered on a day of its own is the same, byte for byte.
    alone = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, CONFIG)
    assert alone.render_email(readers["second"], sections["second"], GENERATED, other) == second


def test_a_digest_without_sections_has_a_plain_subject():
    papers, _ = sample()
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, {}, CONFIG)
    reader = Reader(("no such phrase anywhere",), "en", "UTC", False)
    assert day.sections({"r": reader})["r"] == []
    email = day.render_email(reader, [], GENERATED, LINKS)
    assert email.subject == "arXiv digest · Fri 29 May 2026 · 0 papers"
    assert "“no such phrase anywhere”" in email.html and "  - no such phrase anywhere" in email.text


# --- size ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "language", "some_hidden"),
    [
        (["learning"], "en", False),
        (["diffusion"], "en", False),
        (["cat:cs", "learning", "quantum"], "en", False),
        (["cat:cs"], "en+zh", False),
        # 716 papers: even their titles do not all fit, the last are counted.
        (["model", "cat:math", "cat:physics", "cat:astro-ph"], "en", True),
    ],
)
def test_full_day_stays_under_the_gmail_limit(keywords, language, some_hidden):
    papers = full_day()
    sections, rendered = render(
        papers,
        keywords,
        language=language,
        translations={},
        listing_date=date(2024, 11, 28),
        timezone="UTC",
    )
    size = len(rendered.html.encode())
    assert size <= HTML_BUDGET < 102 * 1024
    listed = ids_in(rendered.html)
    assert listed == ids_in(rendered.text)
    unique = {i for _, ids in sections for i in ids}
    assert len(unique) >= 48
    # Everything is accounted for: listed here, or counted with a link to the page.
    # An English + 简体中文 digest's chrome is 简体中文.
    hidden = sum(int(n) for n in re.findall(r"(?:\.\.\. and|……另有) (\d+) ", rendered.text))
    above = sum(
        int(n)
        for n in re.findall(r"(?:\(|（还有 )(\d+) (?:more papers? listed above|篇)", rendered.text)
    )
    assert bool(hidden) == some_hidden
    if hidden:
        assert f"{LINKS['view_url']}#k-" in rendered.html
    else:
        assert listed == unique
    shown_per_section = [len(ids) for _, ids in sections]
    body = rendered.text.split("\n--\n")[0]
    lines = len(re.findall(r"^(?:\[\d+\] |  - )", body, re.M))
    assert sum(shown_per_section) == lines + above + hidden
    papers_word = "papers: " if language == "en" else "篇论文："
    assert f"{len(unique)} {papers_word}{keywords[0]} ({len(sections[0][1])})" in rendered.subject


def test_subject_stays_short_with_many_keywords():
    papers = full_day()
    keywords = [
        "learning",
        "model",
        "quantum",
        "network",
        "data",
        "graph",
        "neural",
        "optimal",
        "energy",
        "field",
        "dynamics",
        "theory",
        "algorithm",
        "language",
    ]
    _, rendered = render(papers, keywords, listing_date=date(2024, 11, 28))
    assert len(rendered.subject) <= 160
    assert re.search(r"\+\d+ more$", rendered.subject)


# --- the database side ---------------------------------------------------------


def test_load_demo_is_idempotent_and_load_day_reads_it(app):
    session = db.session()
    assert load_demo(session) == DEMO_LISTING_DATE
    session.commit()
    assert load_demo(session) == DEMO_LISTING_DATE
    session.commit()
    assert session.scalar(select(func.count()).select_from(Paper)) == 66
    assert session.scalar(select(func.count()).select_from(Translation)) == 66
    translation = session.scalar(select(Translation).where(Translation.arxiv_id == "2605.28828"))
    assert (
        translation.model == "recorded (sample digest)"
        and translation.status == TranslationStatus.DONE
    )
    day = session.get(ListingDay, DEMO_LISTING_DATE)
    assert day.completed_at is not None and day.translated_at is not None
    session.add(make_paper("2605.99999", listing_date=date(2026, 5, 28)))
    session.commit()
    papers = load_day(session, DEMO_LISTING_DATE)
    assert len(papers) == 66 and "2605.99999" not in papers
    record = next(p for p in read_demo()["papers"] if p["arxiv_id"] == "2605.30056")
    assert papers["2605.30056"].categories == record["categories"] == ["cs.RO", "cs.LG"]
    assert load_day(session, date(2026, 5, 27)) == {}
