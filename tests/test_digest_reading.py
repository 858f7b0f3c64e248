"""What a reader of the digest sees (issue 11): links, every matched paper, language, time zones.

Rendered through DayDigest as the email and the "view in browser" page, on
the demo day (66 papers with their Chinese) and the full day of 2024-11-28
(1,504 papers), with fixed links as tests/test_golden.py does.
"""

import re
from datetime import UTC, datetime

import pytest
from test_digest import ABS_ID, full_day, sample
from test_golden import FULL_DAY, GOLDEN_CONFIG, links

from worker.demo.load import DEMO_LISTING_DATE
from worker.digest.core import DayDigest, Reader
from worker.digest.layout import HTML_BUDGET

GENERATED = datetime(2026, 5, 29, 11, 33, tzinfo=UTC)
DEMO_KEYWORDS = ("reinforcement learning", "diffusion policy")
# Demo papers whose abstract says "this https URL" (and whose Chinese says 此/这个/该 https URL).
WITH_URL = ("2605.28842", "2605.28860", "2605.30002")


def demo_day() -> DayDigest:
    papers, translations = sample()
    return DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, GOLDEN_CONFIG)


def rendered(day: DayDigest, reader: Reader) -> tuple[list, str, str, str]:
    """The reader's sections, and the email's text and HTML and the page."""
    sections = day.sections({"r": reader})["r"]
    email = day.render_email(reader, sections, GENERATED, links("r"))
    return (
        sections,
        email.text,
        email.html,
        day.render_page(reader, sections, GENERATED, links("r")),
    )


def outside_links(html: str) -> str:
    """The HTML with every <a ...>...</a> taken out."""
    return re.sub(r"<a\b[^>]*>.*?</a>", "", html, flags=re.S)


# --- A: "this https URL" --------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "en+zh"])
def test_this_https_url_links_to_the_papers_arxiv_page(language):
    # The line matches the 13 demo papers that say it: all in full in the email too.
    line = '"this https URL"'
    _, text, html, page = rendered(demo_day(), Reader((line,), language, "UTC", False))
    # The line itself, shown in headings and "matched:", is not a paper's text.
    text = text.replace(line, "").replace("\n    ", " ")
    html, page = (part.replace("&#34;this https URL&#34;", "") for part in (html, page))
    for arxiv_id in WITH_URL:
        abs_url = f"https://arxiv.org/abs/{arxiv_id}"
        words = "(?:<mark[^>]*>)?(this https URL|[^<]*https (?:URL|网址))(?:</mark>)?"
        link = re.compile(f'<a href="{re.escape(abs_url)}"[^>]*>{words}</a>')
        assert link.search(html) and link.search(page), arxiv_id
        assert f"this https URL <{abs_url}>" in text, arxiv_id
        if language == "en+zh":
            assert len(link.findall(html)) >= 2, arxiv_id  # the Chinese one too
            assert re.search(rf"https (?:URL|网址) <{re.escape(abs_url)}>", text), arxiv_id
    for part in (html, page):
        assert "https URL" not in outside_links(part)
        assert "https 网址" not in outside_links(part)
    assert not re.search(r"https (?:URL|网址)(?! <https://arxiv\.org/abs/)", text)


def test_a_url_phrase_inside_a_highlight_keeps_the_html_nested():
    """A keyword matching around the link ("code is available at this") cannot cross its tags."""
    _, _, html, _ = rendered(demo_day(), Reader(('"available at this"',), "en", "UTC", False))
    assert html.count("<mark") >= 1
    for mark in re.findall(r"<mark[^>]*>(.*?)</mark>", html, flags=re.S):
        assert mark.count("<a ") == mark.count("</a>"), mark


# --- B: every matched paper, and each entry's links ---------------------------------


@pytest.mark.parametrize(
    ("day", "keywords", "language"),
    [
        ("full", ("cat:cs", "learning", "quantum"), "en"),  # 471 + 176 + 81 lines, 562 papers
        ("full", ("learning", "quantum", "robot", "graph"), "en+zh"),
        ("demo", ("learning", "model", "robot", "policy"), "en+zh"),  # its Chinese fills the budget
    ],
)
def test_every_matched_paper_is_in_the_email_within_the_budget(day, keywords, language):
    digest = (
        demo_day()
        if day == "demo"
        else DayDigest.from_rows(FULL_DAY, full_day(), {}, GOLDEN_CONFIG)
    )
    sections, text, html, _ = rendered(digest, Reader(keywords, language, "UTC", False))
    matched = {arxiv_id for _, ids in sections for arxiv_id in ids}
    assert len(matched) >= 60
    assert len(html.encode()) <= HTML_BUDGET
    assert matched <= set(ABS_ID.findall(html)), len(matched - set(ABS_ID.findall(html)))
    assert matched <= set(ABS_ID.findall(text)), len(matched - set(ABS_ID.findall(text)))
    # Each title links to its arXiv page.
    for arxiv_id in matched:
        assert re.search(rf'<a href="https://arxiv\.org/abs/{re.escape(arxiv_id)}"[^>]*>[^<]', html)
    assert "listed on the digest page" not in text
    assert "on the digest page</a>" not in html


def test_entries_are_shortened_before_any_becomes_a_title():
    digest = DayDigest.from_rows(FULL_DAY, full_day(), {}, GOLDEN_CONFIG)
    _, text, html, _ = rendered(digest, Reader(("learning", "quantum"), "en", "UTC", False))
    shortened = html.count(">more</a>")
    assert shortened >= 5
    assert len(html.encode()) <= HTML_BUDGET


def test_full_entries_link_to_arxiv_html_and_show_doi_and_journal_ref():
    with_doi = next(p for p in full_day().values() if p.doi and p.journal_ref)
    # The RSS feed carries DOI and journal ref (not comments: tests/test_digest.py has those).
    digest = DayDigest.from_rows(FULL_DAY, {with_doi.arxiv_id: with_doi}, {}, GOLDEN_CONFIG)
    word = max(re.findall(r"[A-Za-z]+", with_doi.title), key=len)
    _, text, html, page = rendered(digest, Reader((word,), "en", "UTC", False))
    for part in (html, page):
        assert f'href="https://arxiv.org/html/{with_doi.arxiv_id}"' in part
        assert f"https://doi.org/{with_doi.doi.split()[0]}" in part
        assert "Journal ref:" in part
    assert f"https://arxiv.org/html/{with_doi.arxiv_id}" in text
    assert "Journal ref:" in text


# --- C: language ----------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "en+zh"])
def test_digest_html_is_english_with_its_chinese_marked(language):
    """An English digest is lang="en"; a bilingual one has 简体中文 chrome (lang="zh-Hans"),
    its papers' English titles and abstracts marked lang="en", their translations lang="zh"."""
    _, _, html, page = rendered(demo_day(), Reader(DEMO_KEYWORDS, language, "UTC", False))
    for part in (html, page):
        assert 'lang="und"' not in part
        if language == "en":
            assert part.startswith('<!doctype html><html lang="en"'), part[:60]
            assert ' lang="en">' not in part
        else:
            assert part.startswith('<!doctype html><html lang="zh-Hans"'), part[:60]
            assert 'lang="zh"' in part
            titles = re.findall(
                r'<a href="https://arxiv.org/abs/[^"]+" style="color:#1f2328[^>]*>', part
            )
            assert titles and all('lang="en"' in title for title in titles)
            assert part.count('<p style="margin:6px 0" lang="en">') >= 10


# --- D: time zones ----------------------------------------------------------------------


def test_time_zones_are_shown_by_their_offset_and_name():
    _, text, html, page = rendered(demo_day(), Reader(DEMO_KEYWORDS, "en", "Asia/Shanghai", False))
    for part in (text, html, page):
        assert "CST" not in part and "EDT" not in part
        assert "Fri 29 May 2026, 08:00 UTC+8" in part
        assert "Asia/Shanghai" in part
        assert "Fri 29 May 2026, 19:33 UTC+8" in part


# --- E: CJK line breaking ----------------------------------------------------------------

NO_LINE_START = "，。、；：！？）」』】〉》”’"
NO_LINE_END = "（「『【〈《“‘"


def test_no_text_line_starts_with_closing_or_ends_with_opening_punctuation():
    _, text, _, _ = rendered(demo_day(), Reader(("learning", "model"), "en+zh", "UTC", False))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert sum("强化学习" in line for line in lines) >= 10  # the Chinese is there
    assert [line for line in lines if line[0] in NO_LINE_START] == []
    assert [line for line in lines if line[-1] in NO_LINE_END] == []
