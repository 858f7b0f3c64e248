"""A digest's chrome in its reader's language: English + 简体中文 readers get it in 简体中文.

The chrome is the subject, header, section headings, labels, notes and
footer; the papers (titles, abstracts, authors, translations) stay as they
are. English digests are kept byte for byte by tests/test_golden.py.
"""

import re
from dataclasses import replace
from datetime import UTC, date, datetime

from test_digest import sample
from test_i18n import english_left

from newsletter.config import load_settings
from worker.demo.load import DEMO_LISTING_DATE
from worker.digest.core import DayDigest, Reader
from worker.digest.header import header_dates

CONFIG = replace(
    load_settings({}, ".", dev=True),
    DIGEST_MAX_PER_KEYWORD=25,
    TRANSLATION_LANGUAGE="zh",
    TRANSLATION_BACKEND="recorded",
)
GENERATED = datetime(2026, 5, 29, 11, 33, tzinfo=UTC)
LINKS = {
    name: f"https://digest.example.org/{name}/TOKEN"
    for name in ("manage_url", "unsubscribe_url", "one_click_url", "view_url", "feed_url")
}
KEYWORDS = ("reinforcement learning", "diffusion policy")


def rendered(language: str, timezone: str = "Asia/Shanghai"):
    papers, translations = sample()
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, CONFIG)
    reader = Reader(KEYWORDS, language, timezone, False)
    sections = day.sections({0: reader})[0]
    email = day.render_email(reader, sections, GENERATED, LINKS)
    return email, day.render_page(reader, sections, GENERATED, LINKS), sections


def test_a_bilingual_readers_digest_has_its_chrome_in_chinese():
    email, page, sections = rendered("en+zh")
    assert email.subject == (
        "arXiv 论文摘要 · 2026年5月29日 周五 · 66 篇论文：reinforcement learning (65), "
        "diffusion policy (2)"
    )
    text = email.text
    assert text.startswith("arXiv 论文摘要 · 2026年5月29日 周五 · 66 篇论文\n\n发布日期：")
    assert (
        "公布时间：2026年5月29日 周五 08:00 UTC+8（arXiv，纽约）" not in text
    )  # New York's own time
    assert "公布时间：2026年5月28日 周四 20:00 UTC-4（arXiv，纽约）" in text
    assert "          2026年5月29日 周五 08:00 UTC+8（Asia/Shanghai，您的时区）" in text
    assert "reinforcement learning · 65 篇论文" in text
    assert "    作者：" in text and "    匹配：reinforcement learning" in text
    assert "修改关键词或设置：\n  https://digest.example.org/manage_url/TOKEN" in text
    for html in (email.html, page):
        assert html.startswith('<!doctype html><html lang="zh-Hans"')
        assert "您收到这封邮件，是因为您用以下关键词订阅了 arXiv 论文摘要" in html
        assert (
            '<a href="https://digest.example.org/manage_url/TOKEN" style="color:#0969da">修改关键词或设置</a>'
            in html
        )
        # The translated abstracts keep their own lang; the English ones are still there.
        assert 'lang="zh"' in html
        assert english_left(html) == []
    assert english_left(text.replace("\n", " ")) == []
    # Paper content is untouched: every paper of the sections is in both parts.
    ids = {i for _, section in sections for i in section}
    assert ids == set(re.findall(r"arXiv:(\d{4}\.\d{5})", email.html)) | set(
        re.findall(r"abs/(\d{4}\.\d{5})\"", email.html)
    )


def test_an_english_readers_digest_keeps_its_english_chrome():
    email, page, _ = rendered("en")
    assert email.subject.startswith("arXiv digest · Fri 29 May 2026 · 66 papers: ")
    assert email.html.startswith('<!doctype html><html lang="en"')
    assert "Change keywords or settings:" in email.text
    assert not re.search(r"[\u4e00-\u9fff]", email.subject + email.text)


def test_dates_and_weekly_spans_in_chinese():
    zone = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")
    first, last = date(2026, 5, 25), date(2026, 5, 29)
    span, announced_et, announced_local, timezone, generated = header_dates(
        last, zone, "Asia/Shanghai", GENERATED, first, "zh_Hans"
    )
    assert span == "5月25日 周一 – 2026年5月29日 周五 这一周"
    assert announced_et == "2026年5月28日 周四 20:00 UTC-4"
    assert announced_local == "2026年5月29日 周五 08:00 UTC+8"
    assert generated == "2026年5月29日 周五 19:33 UTC+8"
    english = header_dates(last, zone, "Asia/Shanghai", GENERATED, first)
    assert english[0] == "week of Mon 25 May – Fri 29 May 2026"
    assert english[1] == "Thu 28 May 2026, 20:00 UTC-4"


def test_an_entrys_own_words_follow_the_chrome():
    from newsletter.languages import target_language
    from newsletter.models import AnnounceType
    from worker.digest.entries import listed_note, make_entry

    papers, _ = sample()
    paper = next(p for p in papers.values() if len(p.authors) > 10)
    paper.announce_type = AnnounceType.CROSS
    chinese = target_language("zh")
    entry = make_entry(paper, False, chinese, None, None, (None, None), "zh_Hans")
    assert entry.badge == "交叉列出"
    assert entry.authors.endswith(f"等（共 {len(paper.authors)} 位作者）")
    assert entry.translation_note == "今天暂无简体中文译文。"
    english = make_entry(paper, False, chinese, None)
    assert english.badge == "cross-list"
    assert english.authors.endswith(f"et al. ({len(paper.authors)} authors)")
    assert english.translation_note == "Chinese translation not available today."
    late = date(2026, 6, 1)
    assert listed_note(paper, late, "zh_Hans") == "5月29日 周五 发布，延迟送达"
    assert listed_note(paper, late) == "listed Fri 29 May, arrived late"
