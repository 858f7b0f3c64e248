"""The site and the emails' chrome in 简体中文 (newsletter/i18n.py, newsletter/locales.py).

The catalogue is complete (every message the sources mark, translated, its
%(name)s holes kept) and its committed compiled form is fresh; a page's
language follows ?lang=, the subscriber, the cookie, then Accept-Language;
pages, error pages, form errors and account emails come out in 简体中文 with
no English message of the catalogue left in them.
"""

import json
import re
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlalchemy import select
from test_subscriptions import csrf_from, sign_up

import emails
from newsletter import db, replace_settings
from newsletter.locales import (
    SIMPLIFIED_CHINESE,
    language_locale,
    long_day,
    short_day,
    subscriber_locale,
)
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "newsletter/translations/zh_Hans/LC_MESSAGES/messages.po"
MO = PO.with_suffix(".mo")
# babel.cfg's extra keywords: Flask-Babel's lazy_gettext, the matcher's KeywordError, locales' own.
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "lazy_gettext": None,
    "KeywordError": None,
    "lgettext": (2,),
    "lngettext": (2, 3),
}
HOLE = re.compile(r"%\((\w+)\)s")


def source_messages() -> set[str | tuple[str, ...]]:
    """Every message the sources mark, extracted as `pybabel extract -F babel.cfg` does."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message)
    return found


def catalogue():
    with open(PO, "rb") as file:
        return read_po(file)


def test_every_marked_message_is_in_the_catalogue_and_translated():
    messages = {message.id: message for message in catalogue() if message.id}
    marked = source_messages()
    assert len(marked) > 100  # the extraction found the templates and the Python code
    missing = sorted(str(message) for message in marked if message not in messages)
    assert missing == [], "not in the catalogue (run babel.cfg's commands)"
    untranslated, fuzzy, holes = [], [], []
    for message in messages.values():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set(HOLE.findall(ids[-1]))
        if any(set(HOLE.findall(string)) != wanted for string in strings):
            holes.append(message.id)
    assert untranslated == []
    assert fuzzy == []
    # A translation keeps every %(name)s hole of its English, and adds none.
    assert holes == []


def test_the_committed_compiled_catalogue_is_the_po_compiled():
    def strings(messages) -> dict:
        return {
            tuple(message.id) if isinstance(message.id, list | tuple) else message.id: (
                tuple(message.string)
                if isinstance(message.string, list | tuple)
                else (message.string,)
            )
            for message in messages
            if message.id
        }

    with open(MO, "rb") as file:
        compiled = strings(read_mo(file))
    source = strings(catalogue())
    assert len(source) > 100
    assert compiled == source, "stale messages.mo: pybabel compile -d newsletter/translations"


@pytest.mark.parametrize(
    ("tag", "locale"),
    [
        ("zh-CN", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("zh_Hans", "zh_Hans"),
        ("zh-TW", "zh_Hans"),
        ("en-GB", "en"),
        ("EN", "en"),
        ("fr", None),
        ("*", None),
        ("", None),
    ],
)
def test_language_tags_name_a_locale(tag, locale):
    assert language_locale(tag) == locale


@pytest.mark.parametrize(
    ("language", "locale"),
    [
        ("en", "en"),
        ("en+zh", "zh_Hans"),
        ("en+zh-CN", "zh_Hans"),
        ("en+zh-tw", "en"),
        ("en+ja", "en"),
    ],
)
def test_a_subscribers_digest_language_names_the_interface(language, locale):
    assert subscriber_locale(language) == locale


def test_days_are_written_as_each_language_writes_them():
    from datetime import date

    day = date(2026, 5, 29)
    assert (short_day("en", day), long_day("en", day)) == ("Fri 29 May", "Fri 29 May 2026")
    assert short_day(SIMPLIFIED_CHINESE, day) == "5月29日 周五"
    assert long_day(SIMPLIFIED_CHINESE, day) == "2026年5月29日 周五"


def visible_text(html: str) -> str:
    """The page's text as a reader sees it (tags, scripts and attributes dropped)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def english_left(html: str) -> list[str]:
    """Catalogue messages (of a few words at least) that a zh page still shows in English."""
    text = " ".join(visible_text(html).split())
    found = []
    for message in catalogue():
        for english in message.id if isinstance(message.id, tuple) else (message.id,):
            plain = " ".join(visible_text(HOLE.split(english)[0]).split())
            if len(plain) >= 12 and " " in plain and plain in text:
                found.append(plain)
    return found


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True)).group(1)


def test_the_switch_sets_a_cookie_that_later_pages_follow(client):
    assert html_lang(client.get("/")) == "en"
    page = client.get("/?lang=zh_Hans")
    assert html_lang(page) == "zh-Hans"
    assert "lang=zh_Hans" in page.headers["Set-Cookie"]
    assert "SameSite=Lax" in page.headers["Set-Cookie"]
    body = page.get_data(as_text=True)
    assert "<h1>每个发布日，为您送上相关主题的 arXiv 新论文</h1>" in body
    # The switch: this page in each language, the current one marked.
    assert '<a href="/?lang=en" hreflang="en" lang="en">English</a>' in body
    assert 'hreflang="zh-Hans" lang="zh-Hans" aria-current="true">简体中文</a>' in body
    assert english_left(body) == []
    # Later pages without ?lang= follow the cookie, until the switch says otherwise.
    assert html_lang(client.get("/check-email")) == "zh-Hans"
    assert html_lang(client.get("/check-email?lang=en")) == "en"
    assert html_lang(client.get("/")) == "en"


def test_accept_language_decides_without_a_choice(client):
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    assert html_lang(client.get("/", headers=chinese)) == "zh-Hans"
    assert html_lang(client.get("/", headers={"Accept-Language": "fr,en;q=0.5,zh;q=0.1"})) == "en"
    assert html_lang(client.get("/", headers={"Accept-Language": "de"})) == "en"
    # The choice in the cookie outranks the browser's.
    client.get("/?lang=en")
    assert html_lang(client.get("/", headers=chinese)) == "en"


def test_a_chinese_signup_page_offers_the_bilingual_digest_first(app, client):
    replace_settings(app, TRANSLATION_BACKEND="openai")
    body = client.get("/?lang=zh_Hans").get_data(as_text=True)
    assert '<option value="en+zh" selected>英文 + 简体中文</option>' in body
    body = client.get("/?lang=en").get_data(as_text=True)
    assert '<option value="en" selected>English</option>' in body


def subscriber(language: str, status=SubscriberStatus.CONFIRMED) -> Subscriber:
    row = Subscriber(
        email="li@example.org", email_key="li@example.org", status=status, language=language
    )
    row.keywords.append(Keyword(position=0, text="diffusion policy"))
    db.session().add(row)
    db.session().commit()
    return row


def test_subscriber_pages_follow_the_subscribers_language(app, client):
    replace_settings(app, TRANSLATION_BACKEND="openai")
    reader = subscriber("en+zh")
    manage = make_token(app.config["SECRET_KEY"], "manage", reader.public_id)
    unsubscribe = make_token(app.config["SECRET_KEY"], "unsubscribe", reader.public_id)
    english = {"Accept-Language": "en"}
    page = client.get(f"/manage/{manage}", headers=english)
    assert html_lang(page) == "zh-Hans"
    body = page.get_data(as_text=True)
    assert '<strong class="status">已确认</strong>' in body
    assert english_left(body) == []
    assert html_lang(client.get(f"/unsubscribe/{unsubscribe}", headers=english)) == "zh-Hans"
    # The switch's own link shows the page in the language it names.
    assert html_lang(client.get(f"/manage/{manage}?lang=en")) == "en"

    # A form error in the reader's language, the matcher's message included.
    form = {
        "csrf_token": csrf_from(client, f"/manage/{manage}"),
        "keywords": 'cat:zz.XX\n"open quote',
        "language": "en+zh",
        "timezone": "Mars/Olympus",
        "delivery_hour": "25",
    }
    answer = client.post(f"/manage/{manage}", data=form)
    assert answer.status_code == 400
    body = answer.get_data(as_text=True)
    assert "有 2 行需要修改：" in body
    assert "第 1 行（cat:zz.XX）：“cat:zz.XX”：arXiv 没有名为“zz”的学科。" in body
    assert "引号没有闭合" in body
    assert "请从列表中选择时区" in body and "请选择 0 到 23 之间的整点" in body
    assert english_left(body) == []


def test_error_pages_are_in_the_pages_language(app, client):
    chinese = {"Accept-Language": "zh-CN"}
    missing = client.get("/no-such-page", headers=chinese)
    assert missing.status_code == 404 and html_lang(missing) == "zh-Hans"
    assert "<h1>未找到</h1>" in missing.get_data(as_text=True)
    assert "此地址没有页面。" in missing.get_data(as_text=True)
    wrong_method = client.put("/", headers=chinese)
    assert wrong_method.status_code == 405
    assert "不能以这种方式打开此页面。" in wrong_method.get_data(as_text=True)
    bad_link = client.get("/manage/not-a-token", headers=chinese)
    assert "此链接无效" in bad_link.get_data(as_text=True)
    for response in (missing, wrong_method, bad_link):
        assert english_left(response.get_data(as_text=True)) == []


def test_csrf_and_rate_limit_refusals_are_translated(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    chinese = {"Accept-Language": "zh-CN"}
    refused = client.post("/", data={"email": "li@example.org"}, headers=chinese)
    assert refused.status_code == 400
    assert "此表单已过期，或者不是从本站提交的" in refused.get_data(as_text=True)

    replace_settings(app, SIGNUP_LIMIT_PER_IP=1)
    client.get("/?lang=zh_Hans")
    assert sign_up(client, email="a@example.org").status_code == 302
    limited = sign_up(client, email="b@example.org")
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    body = limited.get_data(as_text=True)
    assert "<h1>请求过于频繁</h1>" in body and "订阅尝试次数过多" in body


def test_account_emails_are_in_the_subscribers_language(app, client, outbox):
    replace_settings(app, TRANSLATION_BACKEND="openai")
    assert sign_up(client, email="li@example.org", language="en+zh").status_code == 302
    [confirm] = outbox.messages()
    assert confirm["Subject"] == "确认您的 arXiv 论文摘要订阅"
    text = confirm.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = confirm.get_body(("html",)).get_content()
    assert text.startswith("您好：\n") and "  - diffusion policy" in text
    assert '<html lang="zh-Hans"' in html and "确认订阅" in html
    assert english_left(html) == [] and english_left(text.replace("\n", " ")) == []
    # The address, confirmed, signs up again: the reminder is in its stored language.
    db.session().scalars(select(Subscriber)).one().status = SubscriberStatus.CONFIRMED
    db.session().commit()
    assert sign_up(client, email="li@example.org", language="en").status_code == 302
    reminder = outbox.messages()[-1]
    assert reminder["Subject"] == "您的 arXiv 论文摘要订阅"
    assert db.session().scalars(select(Subscriber)).one().language == "en+zh"


def test_english_emails_are_unchanged_by_the_catalogue():
    english = emails.render("confirm", keywords=["x"], confirm_url="https://x/c")
    chinese = emails.render(
        "confirm", SIMPLIFIED_CHINESE, keywords=["x"], confirm_url="https://x/c"
    )
    assert english.subject == "Confirm your arXiv digest subscription"
    assert english.text.startswith("Hello,\n\nSomeone (hopefully you) asked")
    assert chinese.subject == "确认您的 arXiv 论文摘要订阅"
    # Same structure: the links and values are where they were.
    assert english.text.count("https://x/c") == chinese.text.count("https://x/c") == 1


def test_the_typed_preview_follows_the_page_and_sets_no_cookie(client):
    """static/preview.js asks with the page's language; that is no choice to remember."""
    answer = client.get("/preview.js?keywords=diffusion+policy&n=1&lang=zh-Hans")
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    fragment = json.loads(answer.get_data(as_text=True).split(", ", 1)[1].rsplit(");", 1)[0])
    assert "还没有存储任何发布日期的论文" in fragment
    page = client.get("/?lang=zh_Hans").get_data(as_text=True)
    assert 'data-unavailable="预览暂时不可用。"' in page


def test_an_invalid_address_is_refused_in_the_pages_language(app, client):
    """email_validator's reasons are English: an English page shows the reason, a
    简体中文 page the translated sentence alone (no English mixed in)."""
    english = sign_up(client, email="ada@@example.org").get_data(as_text=True)
    assert "That is not a valid email address: The part after the @-sign contains" in english

    client.get("/?lang=zh_Hans")
    chinese = sign_up(client, email="ada@@example.org", csrf_token=csrf_from(client))
    body = chinese.get_data(as_text=True)
    assert chinese.status_code == 400 and "这不是有效的邮箱地址。" in body
    assert "The email address" not in body and "@-sign" not in body
