"""The demo's Chinese (newsletter/data/demo_2026-05-29.json) as repaired by worker/demo/repair.py.

The bilingual demo is the first digest a new user reads: it must not show the
predecessor tool's defects (TeX dollars read as 美元, 代币 for "token", ...).
The email is rendered through DayDigest as tests/test_golden.py does, the page
through the app from the rows `load_demo` stores.
"""

from collections import Counter

import pytest
from test_digest import sample
from test_digest_page import SAMPLE_KEYWORDS, add_subscriber, view_url
from test_golden import GOLDEN_CONFIG, demo_readers, render_all

from newsletter import db
from worker.demo.load import DEMO_LISTING_DATE, DEMO_PATH, load_demo, read_demo
from worker.demo.repair import DEFECTS, dump, problems, repair_demo, repair_field
from worker.digest.core import DayDigest
from worker.digest.reader import Reader
from worker.translation.placeholders import protect

# The list, spelled out here so a shortened DEFECTS cannot weaken the test.
FORBIDDEN = ["美元", "黑客攻击", "代币", "非发行的", "%%", "\\p/footnote{", "\\倍数"]
# 2605.29032's `$1.5$-$2.2\times$`, recorded as "1.5美元至2.2美元\倍数", rendered.
RANGE_ZH = "降低了1.5至2.2×"


# A reader whose only line matches 2605.29032 gets it in full in the email: the
# demo readers' bilingual emails are near the size budget, where issue 11's fitting
# shows it shortened (title and link, no abstract).
RANGE_READER = Reader(("policy-aware simulator",), "en+zh", "UTC", include_replacements=False)


def bilingual_outputs() -> dict[str, dict[str, str]]:
    papers, translations = sample()
    day = DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, GOLDEN_CONFIG)
    readers = {name: r for name, r in demo_readers().items() if r.language == "en+zh"}
    return render_all(day, readers | {"demo-range": RANGE_READER})


def test_bilingual_demo_email_and_page_show_none_of_the_recorded_defects():
    outputs = bilingual_outputs()
    assert len(outputs) == 3
    for name, output in outputs.items():
        for part in ("text", "html", "page"):
            rendered = output[part]
            # The Chinese is there at all: the test cannot pass on an English-only digest.
            if name != "demo-range":  # one paper, of neither term
                assert "强化学习" in rendered and "词元" in rendered, (name, part)
            assert "2605.29032" in rendered, (name, part)
            # The abstract, where shown, is shown in both languages, its TeX rendered.
            assert (RANGE_ZH in rendered) == ("1.5–2.2×" in rendered), (name, part)
            if part == "page" or name == "demo-range":
                assert RANGE_ZH in rendered, (name, part)
            for defect in FORBIDDEN:
                assert defect not in rendered, (name, part, defect)


@pytest.fixture
def bilingual(app):
    session = db.session()
    load_demo(session)
    subscriber = add_subscriber("bilingual@example.org", SAMPLE_KEYWORDS, language="en+zh")
    session.commit()
    return subscriber


def test_bilingual_demo_page_served_by_the_app_shows_none_of_the_defects(app, client, bilingual):
    html = client.get(view_url(app, bilingual)).get_data(as_text=True)
    assert "强化学习" in html and RANGE_ZH in html
    for defect in FORBIDDEN:
        assert defect not in html, defect


def test_bundled_chinese_has_no_defect_and_the_english_spans():
    assert set(FORBIDDEN) <= set(DEFECTS)
    for paper in read_demo()["papers"]:
        for field in ("title", "abstract"):
            english, chinese = paper[field], paper["zh"][field]
            assert problems(english, chinese) == [], (paper["arxiv_id"], field)
            # Math spans, counted directly (no merging of touching spans involved).
            assert math_spans(english) == math_spans(chinese), (paper["arxiv_id"], field)


def math_spans(text: str) -> Counter[str]:
    return Counter(s for s in protect(text).originals if s.startswith(("$", "\\(", "\\[")))


def test_repair_is_idempotent_on_the_bundled_file():
    text = DEMO_PATH.read_text(encoding="utf-8")
    repaired, changes = repair_demo(read_demo())
    assert changes == []
    assert dump(repaired) == text


# Recorded text before the repair (from the sample digest), and what the repair makes of it.
@pytest.mark.parametrize(
    ("arxiv_id", "english", "recorded", "repaired"),
    [
        (
            "2605.29032",
            "errors by $1.5$-$2.2\\times$ and",
            "误差降低了1.5美元至2.2美元\\倍数,并使",
            "误差降低了$1.5$至$2.2\\times$,并使",
        ),
        (
            "2605.29190",
            "from $16.0\\%$ at the base to $36.0\\%$, without",
            "从基础的16.0%%提升至36.0%美元,且",
            "从基础的$16.0\\%$提升至$36.0\\%$,且",
        ),
        (
            "2605.30219",
            "by 46.1\\% across two tasks\\footnote{Code is coming",
            "降低了46.1%\\p/footnote{代码即将",
            "降低了46.1\\%\\footnote{代码即将",
        ),
        (
            "2605.28829",
            "out-of-distribution reasoning datasets; fewer output tokens",
            "非发行的推理数据集;输出代币数量",
            "分布外推理数据集;输出词元数量",
        ),
        ("2605.29009", "prone to reward hacking.", "容易被黑客攻击。", "容易出现奖励投机。"),
    ],
)
def test_repair_of_recorded_defects(arxiv_id, english, recorded, repaired):
    result, changes = repair_field(arxiv_id, "abstract", english, recorded)
    assert result == repaired
    assert changes and all(c.arxiv_id == arxiv_id and c.field == "abstract" for c in changes)
    assert problems(english, result) == []
    assert repair_field(arxiv_id, "abstract", english, result) == (result, [])


def test_repair_refuses_to_write_what_it_cannot_repair():
    demo = read_demo()
    paper = demo["papers"][0]
    broken = paper | {"zh": paper["zh"] | {"abstract": paper["zh"]["abstract"] + " 成本5美元"}}
    with pytest.raises(ValueError, match="美元"):
        repair_demo(demo | {"papers": [broken]})
