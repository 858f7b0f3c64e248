"""worker/translation/tldr.py and tldr_prompt.py against the local model server, and the
TL;DR in the digest email (HTML and text) of the subscribers who tick it.

The model server is tests/test_translation.py's `ChatServer` (Chat Completions on
127.0.0.1); here it answers TL;DR requests (`{"tldrs": [...]}`) with a
sentence per paper that quotes the paper's first formula as its placeholder,
in English or in Chinese as the system prompt asks. Tests swap in hostile
answers: several lines, huge, HTML, TeX of the model's own, broken placeholders.
"""

import json
import re

import feedparser
import pytest
from sqlalchemy import select
from test_translation import (
    DEMO_DATE,
    RECORDED,
    ChatServer,
    Reply,
    Request,
    add_subscriber,
    answer,
    completion,
    settings,
    store_sample_day,
)

from newsletter import db, replace_settings
from newsletter.config import settings as app_settings
from newsletter.db import utcnow
from newsletter.models import ListingDay, Paper, Subscriber, Tldr, TranslationStatus
from newsletter.tokens import subscriber_links
from worker.digest.core import DayDigest, Reader
from worker.digest.selection import match_papers
from worker.translation.job import translate_day
from worker.translation.placeholders import PLACEHOLDER, protect
from worker.translation.prompt import Target, TranslationError
from worker.translation.tldr_prompt import ENGLISH, check_tldr, protect_paper

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ZH = Target("zh", "Simplified Chinese", {})
# 2605.29032's abstract has `$1.5$-$2.2\times$`: its placeholders ⟦0⟧-⟦1⟧.
TEX_PAPER = "2605.29032"


# --- the model server's answers ---


def is_tldr(request: Request) -> bool:
    return "TL;DR" in request.system


def good_tldr(paper: dict, chinese: bool) -> str:
    """A sane one-line TL;DR quoting the paper's first two placeholders, if it has them."""
    found = PLACEHOLDER.findall(paper["title"] + " " + paper["abstract"])
    formula = "-".join(f"⟦{n}⟧" for n in found[:2])
    if chinese:
        return f"提出一种新方法，在基准上效果更好{formula}。"
    words = " ".join(re.findall(r"[A-Za-z]+", paper["title"])[:4]).lower()
    return f"Proposes {words} and shows it works{' with ' + formula if formula else ''}."


def tldr_reply(request: Request, edit=lambda tldr: tldr) -> Reply:
    if not is_tldr(request):
        return answer(request)  # the bilingual readers' translations, as test_translation's
    chinese = "Simplified Chinese" in request.system
    items = [{"id": p["id"], "tldr": edit(good_tldr(p, chinese))} for p in request.papers]
    return Reply(body=completion(json.dumps({"tldrs": items}, ensure_ascii=False)))


@pytest.fixture
def chat_server():
    server = ChatServer()
    server.respond = tldr_reply
    yield server
    server.close()


@pytest.fixture
def openai_settings(config, chat_server):
    config.update(settings(chat_server.url))
    return config


def tldr_requests(server: ChatServer, language: str) -> list[Request]:
    name = "English" if language == "en" else "Simplified Chinese"
    return [r for r in server.requests if is_tldr(r) and f"TL;DR in {name}" in r.system]


def tldr_rows(session, status=TranslationStatus.DONE) -> dict[tuple[str, str], Tldr]:
    rows = session.scalars(select(Tldr).where(Tldr.status == status))
    return {(row.arxiv_id, row.language): row for row in rows}


# --- the answer checks (pure) ---


TITLE = "Fast $O(n)$ search"
ABSTRACT = (
    "We show \\textbf{bold} claims and a link https://example.org/x with $1.5\\times$ speedup."
)


def source():
    return protect_paper(TITLE, ABSTRACT)[1]


def test_title_and_abstract_share_one_numbering():
    title, abstract = protect_paper(TITLE, ABSTRACT)
    assert title.text == "Fast ⟦0⟧ search"
    assert "⟦0⟧" not in abstract.text and "⟦4⟧" in abstract.text
    assert title.originals == abstract.originals == protect(f"{TITLE}\n\n{ABSTRACT}").originals


def test_a_sane_tldr_gets_its_tex_back():
    entry = {"tldr": "A ⟦0⟧ search that is ⟦4⟧ faster."}
    assert check_tldr(entry, source(), ENGLISH) == "A $O(n)$ search that is $1.5\\times$ faster."
    chinese = {"tldr": "一种 ⟦0⟧ 搜索方法，速度提升 ⟦4⟧。"}
    assert check_tldr(chinese, source(), ZH) == "一种 $O(n)$ 搜索方法，速度提升 $1.5\\times$。"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, "missing from the answer"),
        ({"tldr": ""}, "empty"),
        ({"tldr": 42}, "empty"),
        ({"tldr": "A fast search.\nIt is also correct."}, "more than one line"),
        ({"tldr": "A fast search.\u2028Second line."}, "more than one line"),
        ({"tldr": "Fast search " * 40}, "characters, not 8-200"),
        ({"tldr": "Short."}, "characters, not 8-200"),
        ({"tldr": "A <b>fast</b> search for everyone."}, "markup '<b>'"),
        ({"tldr": "A fast search <script>alert(1)</script>"}, "markup '<script>'"),
        ({"tldr": "A fast search &amp; more for all."}, "markup '&amp;'"),
        ({"tldr": "A **fast** search for everyone."}, "markup '**'"),
        ({"tldr": "A fast [search](https://evil.example) for all."}, "markup ']('"),
        ({"tldr": "A fast search in $O(\\log n)$ time."}, "markup '$'"),
        ({"tldr": "A fast search in \\emph{linear} time."}, "markup '\\\\'"),
        ({"tldr": "A fast search, ⟦9⟧ times faster."}, "placeholder invented"),
        ({"tldr": "A ⟦0⟧ search in ⟦0⟧ time overall."}, "placeholder duplicated"),
        ({"tldr": "A ⟦0 search that is faster."}, "placeholder was altered"),
        ({"tldr": "A ⟦1⟧bold search, fast and good."}, "half of a placeholder pair"),
        ({"tldr": "A ⟦2⟧ bold ⟦1⟧ search, fast."}, "pair out of order"),
        ({"tldr": "Here is the TL;DR: a fast search."}, "commentary"),
        ({"tldr": "一种快速的搜索方法，速度更快。"}, "not in English"),
    ],
)
def test_hostile_english_answers_are_rejected(answer, error):
    with pytest.raises(TranslationError, match=re.escape(error)):
        check_tldr(answer, source(), ENGLISH)


def test_a_chinese_tldr_must_be_chinese_and_short():
    with pytest.raises(TranslationError, match="not in Simplified Chinese"):
        check_tldr({"tldr": "A fast search that is faster."}, source(), ZH)
    with pytest.raises(TranslationError, match="characters"):
        check_tldr({"tldr": "一种快速的搜索方法" * 10}, source(), ZH)


# --- the job, on the database ---


POOL = ["large language model", "diffusion policy", "robot", "world model", "minimax"]
BILINGUAL_LINES = ["large language model", "minimax"]


def needed_papers(session, lines) -> set[str]:
    papers = list(session.scalars(select(Paper)))
    matches = match_papers(papers, lines)
    return set().union(*(matches[line] for line in lines))


def tick(session, number, lines, language="en", tldr=True):
    subscriber = add_subscriber(session, number, lines, language=language)
    subscriber.tldr = tldr
    return subscriber


def test_one_request_batch_per_paper_version_however_many_tick_it(
    openai_settings, app, chat_server
):
    session = db.session()
    store_sample_day(session)
    for n in range(300):  # English readers who tick it
        tick(session, n, [POOL[n % 5]])
    for n in range(300, 400):  # bilingual readers who tick it: Chinese TL;DRs too
        tick(session, n, [BILINGUAL_LINES[n % 2]], language="en+zh")
    tick(session, 400, ["cat:eess.SY"], tldr=False)  # gets no TL;DR: none written for it
    session.commit()
    english = needed_papers(session, POOL)
    chinese = needed_papers(session, BILINGUAL_LINES)
    only_unticked = needed_papers(session, ["cat:eess.SY"]) - english
    assert len(english) > len(chinese) > 5 and only_unticked  # the scenario tests something

    report = translate_day(session, app_settings(app), DEMO_DATE)

    assert report.tldrs.written == len(english) + len(chinese) and report.tldrs.failed == 0
    for language, ids in (("en", english), ("zh", chinese)):
        requests = tldr_requests(chat_server, language)
        asked = [i for r in requests for i in r.ids]
        assert sorted(asked) == sorted(f"{i}v1" for i in ids)  # each version once
        assert len(requests) == -(-len(ids) // 4)  # TRANSLATION_BATCH_SIZE=4 a request
    rows = tldr_rows(session)
    assert set(rows) == {(i, "en") for i in english} | {(i, "zh") for i in chinese}
    tex = rows[(TEX_PAPER, "en")]
    assert "$1.5$-$2.2\\times$" in tex.text and tex.model == "test-model" and tex.tokens > 0
    assert "$1.5$-$2.2\\times$" in rows[(TEX_PAPER, "zh")].text
    assert session.get(ListingDay, DEMO_DATE).translated_at is not None
    assert str(report).endswith(
        f"; TL;DRs written {len(english) + len(chinese)}, reused from cache 0, failed 0, "
        f"tokens used {report.tldrs.tokens}"
    )

    asked_before = len(chat_server.requests)
    again = translate_day(session, app_settings(app), DEMO_DATE)
    assert len(chat_server.requests) == asked_before  # a second run makes no request
    assert (again.tldrs.written, again.tldrs.reused) == (0, len(english) + len(chinese))


def test_nobody_ticks_it_no_request(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["robot"], tldr=False)
    session.commit()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert not report.tldrs and chat_server.requests == []
    assert session.scalars(select(Tldr)).all() == []


def test_a_new_version_gets_a_new_tldr(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["minimax"])
    session.commit()
    translate_day(session, app_settings(app), DEMO_DATE)
    paper = session.scalars(select(Paper).where(Paper.arxiv_id == TEX_PAPER)).one()
    paper.version = 2
    session.commit()
    assert translate_day(session, app_settings(app), DEMO_DATE).tldrs.written == 1
    assert [r.ids for r in tldr_requests(chat_server, "en")] == [
        [f"{TEX_PAPER}v1"],
        [f"{TEX_PAPER}v2"],
    ]


HOSTILE = [
    lambda tldr: tldr + "\nAnd a second line.",
    lambda tldr: tldr * 30,
    lambda tldr: f"<b>{tldr}</b>",
    lambda tldr: tldr.replace("⟦1⟧", "⟦1"),
    lambda tldr: tldr.replace("⟦1⟧", "⟦7⟧"),
    lambda tldr: tldr.replace("⟦0⟧", "$1.5$"),
]


@pytest.mark.parametrize("edit", HOSTILE)
def test_hostile_answers_are_asked_again_then_dropped(openai_settings, app, chat_server, edit):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["minimax"])  # one paper: 2605.29032, with a formula
    session.commit()
    chat_server.respond = lambda request: tldr_reply(request, edit)
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert (report.tldrs.written, report.tldrs.failed) == (0, 1)
    assert len(chat_server.requests) == 3  # asked, then asked again twice
    row = session.scalars(select(Tldr)).one()
    assert row.status is TranslationStatus.FAILED and row.text is None and row.error
    # The next run asks again, and a good answer is kept.
    chat_server.respond = tldr_reply
    assert translate_day(session, app_settings(app), DEMO_DATE).tldrs.written == 1


def test_a_rejected_answer_is_asked_again_for_that_paper_only(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["world model", "minimax"])
    session.commit()

    def once_bad(request: Request) -> Reply:
        reply = tldr_reply(request)
        if len(chat_server.requests) == 1:  # the first answer: the TeX paper's has two lines
            body = json.loads(reply.body["choices"][0]["message"]["content"])
            for item in body["tldrs"]:
                if item["id"] == f"{TEX_PAPER}v1":
                    item["tldr"] += "\nA second line."
            reply = Reply(body=completion(json.dumps(body, ensure_ascii=False)))
        return reply

    chat_server.respond = once_bad
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert report.tldrs.failed == 0 and report.tldrs.written >= 2
    assert f"{TEX_PAPER}v1" in chat_server.requests[0].ids and len(chat_server.requests[0].ids) > 1
    assert [r.ids for r in chat_server.requests[1:]] == [[f"{TEX_PAPER}v1"]]


def test_backend_none_and_recorded_write_none(config, app, chat_server):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["robot"])
    session.commit()
    for backend in ("none", "recorded"):
        replace_settings(app, **settings(chat_server.url, TRANSLATION_BACKEND=backend))
        report = translate_day(session, app_settings(app), DEMO_DATE)
        assert not report.tldrs
    assert [r for r in chat_server.requests if is_tldr(r)] == []
    assert session.scalars(select(Tldr)).all() == []


def test_past_the_deadline_no_request(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session, completed_minutes_ago=61)
    tick(session, 1, ["robot"])
    session.commit()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert report.tldrs.written == 0 and report.tldrs.failed > 0
    assert chat_server.requests == []


def test_translations_and_tldrs_share_the_daily_budget(openai_settings, app, chat_server, caplog):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["robot"])
    session.add(
        Tldr(arxiv_id="2401.00001", version=1, language="en", status=TranslationStatus.DONE)
    )
    session.flush()
    session.scalars(select(Tldr)).one().tokens = 1000
    session.commit()
    replace_settings(app, TRANSLATION_DAILY_TOKEN_BUDGET=1000)
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert chat_server.requests == [] and report.tldrs.failed > 0
    assert "daily token budget reached (1000 of 1000" in caplog.text


# --- in the digest ---


def texts_by_reader(outbox) -> dict[str, tuple[str, str]]:
    return {
        m["To"].addresses[0].addr_spec: (
            m.get_body(("plain",)).get_content(),
            m.get_body(("html",)).get_content(),
        )
        for m in outbox.messages()
    }


def test_the_digest_shows_tldrs_to_those_who_tick_it(openai_settings, app, outbox, chat_server):
    from worker.delivery.dispatch import dispatch_digests

    session = db.session()
    store_sample_day(session)
    tick(session, 1, ["minimax"])
    tick(session, 2, ["minimax"], language="en+zh")
    tick(session, 3, ["minimax"], tldr=False)
    session.commit()

    held = dispatch_digests(DEMO_DATE, utcnow(), send_now=True)
    assert held.held == 2 and len(outbox.messages()) == 1  # TL;DRs wait like translations

    translate_day(session, app_settings(app), DEMO_DATE)
    dispatch_digests(DEMO_DATE, utcnow(), send_now=True)
    mail = texts_by_reader(outbox)
    english = "TL;DR: Proposes theoretical foundations and effective and shows it works with"
    text, html = mail["reader1@example.org"]
    title = RECORDED[TEX_PAPER]["title"]
    assert english + " 1.5–2.2×." in " ".join(text.split())  # the TeX made readable
    assert text.index("[1] Theoretical Foundations") < text.index("TL;DR:") < text.index("Authors:")
    assert "<b>TL;DR</b> <span>Proposes theoretical foundations" in html
    assert html.index(title.split()[-1]) < html.index("<b>TL;DR</b>")
    text, html = mail["reader2@example.org"]
    assert "TL;DR: Proposes" in text and "TL;DR: 提出一种新方法" in " ".join(text.split())
    # The chrome is 简体中文: the English TL;DR is marked as English, the other as Chinese.
    assert '<b>TL;DR</b> <span lang="en">Proposes theoretical foundations' in html
    assert 'lang="zh"><b>TL;DR</b> 提出一种新方法' in html
    text, html = mail["reader3@example.org"]
    assert "TL;DR" not in text and "TL;DR" not in html


def test_readers_who_do_not_tick_it_get_the_same_digest(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session)
    tick(session, 1, POOL)
    session.commit()
    config = app_settings(app)
    plain = Reader(tuple(POOL), "en+zh", "UTC", False)
    before = DayDigest.load(session, config, DEMO_DATE)
    sections = before.sections({0: plain})[0]
    now = utcnow()
    links = subscriber_links(config, "0" * 32, DEMO_DATE)
    without = before.render_email(plain, sections, now, links)

    translate_day(session, config, DEMO_DATE)
    assert tldr_rows(session)
    after = DayDigest.load(session, config, DEMO_DATE)
    assert after.render_email(plain, sections, now, links) == without
    ticked = after.render_email(Reader(tuple(POOL), "en", "UTC", False, True), sections, now, links)
    assert "TL;DR" in ticked.text and ticked.text.count("TL;DR:") > 5


def test_tldr_setting_is_stored_from_the_manage_form(app, client):
    session = db.session()
    subscriber = add_subscriber(session, 1, ["robot"], language="en")
    session.commit()
    manage = subscriber_links(app_settings(app), subscriber.public_id)["manage_url"]
    manage = manage.removeprefix(app_settings(app).BASE_URL)
    page = client.get(manage).get_data(as_text=True)
    assert 'name="tldr" type="checkbox">' in page  # not ticked
    form = {"keywords": "robot", "language": "en", "timezone": "UTC", "delivery_hour": "asap"}
    form["csrf_token"] = CSRF.search(page).group(1)
    assert client.post(manage, data={**form, "tldr": "on"}).status_code == 302
    session.expire_all()
    assert session.get(Subscriber, subscriber.id).tldr is True
    assert 'name="tldr" type="checkbox" checked>' in client.get(manage).get_data(as_text=True)
    assert client.post(manage, data=form).status_code == 302
    session.expire_all()
    assert session.get(Subscriber, subscriber.id).tldr is False


# --- on the digest web page and in the Atom feed ---


def test_the_page_and_the_feed_show_tldrs_to_those_who_tick_it(
    openai_settings, app, client, chat_server
):
    from newsletter import feed_cache

    feed_cache.clear_caches()
    session = db.session()
    store_sample_day(session)
    ticking = tick(session, 1, ["minimax"])
    plain = tick(session, 2, ["minimax"], tldr=False)
    session.commit()
    config = app_settings(app)

    def get(subscriber, name):
        url = subscriber_links(config, subscriber.public_id, DEMO_DATE)[name]
        return client.get(url.removeprefix(config.BASE_URL))

    before = get(ticking, "feed_url")
    assert before.status_code == 200 and b"TL;DR" not in before.get_data()
    translate_day(session, config, DEMO_DATE)

    page = get(ticking, "view_url").get_data(as_text=True)
    assert "<b>TL;DR</b> <span>Proposes theoretical foundations" in page
    assert "TL;DR" not in get(plain, "view_url").get_data(as_text=True)

    # A TL;DR written since the reader's last fetch is a change: no 304.
    again = client.get(
        subscriber_links(config, ticking.public_id)["feed_url"].removeprefix(config.BASE_URL),
        headers={"If-None-Match": before.headers["ETag"]},
    )
    assert again.status_code == 200
    parsed = feedparser.parse(again.get_data())
    assert parsed.bozo == 0 and parsed.version == "atom10"
    (entry,) = parsed.entries
    assert entry.summary.startswith(
        "TL;DR: Proposes theoretical foundations and effective and shows it works with 1.5–2.2×."
    )
    assert "Model-based reinforcement learning" in entry.summary
    plain_feed = feedparser.parse(get(plain, "feed_url").get_data())
    assert plain_feed.entries[0].summary.startswith("Model-based reinforcement learning")


# --- sign-up and import carry it ---


def test_sign_up_with_tldr_ticked_stores_it(app, client):
    page = client.get("/").get_data(as_text=True)
    assert 'name="tldr" type="checkbox">' in page
    form = {
        "email": "ada@example.org",
        "keywords": "robot",
        "language": "en",
        "timezone": "UTC",
        "delivery_hour": "asap",
        "csrf_token": CSRF.search(page).group(1),
    }
    assert client.post("/", data={**form, "tldr": "on"}).status_code in (200, 302)
    client.post("/", data={**form, "email": "bob@example.org"})
    stored = {s.email: s.tldr for s in db.session().scalars(select(Subscriber))}
    assert stored == {"ada@example.org": True, "bob@example.org": False}


def test_import_reads_the_tldr_column(app, tmp_path):
    from newsletter.cli import main

    path = tmp_path / "list.csv"
    path.write_text(
        "email,keywords,language,timezone,tldr\n"
        "ada@example.org,robot,en,UTC,true\n"
        "bob@example.org,robot,en,UTC,\n"
        "eve@example.org,robot,en,UTC,maybe\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(main, ["subscribers", "import", str(path), "--confirmed"])
    assert result.stdout == "imported 2, skipped 0 existing, rejected 1\n"
    assert "tldr: 'maybe' is neither true nor false" in result.stderr
    stored = {s.email: s.tldr for s in db.session().scalars(select(Subscriber))}
    assert stored == {"ada@example.org": True, "bob@example.org": False}
