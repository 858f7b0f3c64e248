"""TRANSLATION_LANGUAGE end to end: one setting decides the bilingual language everywhere.

With TRANSLATION_LANGUAGE=ja a subscriber signs up for English + 日本語 on the
form, confirms, the translation job asks a local OpenAI-compatible server for
Japanese, and the digest carries that Japanese marked lang="ja". Chinese
appears nowhere: not on the form, not in the prompt, not in the email.
"""

import json
import re

from sqlalchemy import select
from test_subscriptions import links_in, path_of, sign_up
from test_translation import ChatServer, Reply, completion, settings, with_placeholders

from newsletter import db, replace_settings
from newsletter.config import settings as app_settings
from newsletter.models import Subscriber, Translation
from worker.delivery.dispatch import dispatch_digests
from worker.demo.load import DEMO_LISTING_DATE, load_demo
from worker.translation.job import translate_day

JAPANESE_TITLE = "強化学習による論文"
JAPANESE_SENTENCE = "本論文では強化学習の新しい手法を提案する。"


def japanese_for(paper: dict) -> dict:
    """A well-formed Japanese answer for one requested paper, placeholders kept."""
    sentences = max(1, round(len(paper["abstract"]) * 0.45 / len(JAPANESE_SENTENCE)))
    return {
        "id": paper["id"],
        "title": with_placeholders(paper["title"], JAPANESE_TITLE),
        "abstract": with_placeholders(paper["abstract"], JAPANESE_SENTENCE * sentences),
    }


def test_japanese_from_sign_up_to_digest(app, client, outbox):
    server = ChatServer()
    try:
        server.respond = lambda request: Reply(
            body=completion(
                json.dumps(
                    {"translations": [japanese_for(p) for p in request.papers]},
                    ensure_ascii=False,
                )
            )
        )
        replace_settings(app, **settings(server.url, TRANSLATION_LANGUAGE="ja"))
        session = db.session()
        load_demo(session)  # its recorded translations are Chinese: never shown here
        session.commit()

        form = client.get("/").get_data(as_text=True)
        assert '<option value="en+ja">English + 日本語</option>' in form
        # (The site's language switch names 简体中文; the form does not offer it.)
        assert "English + 简体中文" not in form and "en+zh" not in form
        assert sign_up(client, language="en+ja", email="hanako@example.org").status_code == 302
        (confirmation,) = outbox.messages()
        confirm = next(link for link in links_in(confirmation) if "/confirm/" in link)
        page = client.get(path_of(confirm)).get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post(path_of(confirm), data={"csrf_token": csrf}).status_code in (200, 302)
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.language == "en+ja" and subscriber.status.value == "confirmed"

        report = translate_day(session, app_settings(app), DEMO_LISTING_DATE)
        assert report.translated > 0 and report.failed == 0
        assert all("Japanese" in request.system for request in server.requests)
        stored = session.scalars(select(Translation).where(Translation.language == "ja")).all()
        assert len(stored) == report.translated

        summary = dispatch_digests(DEMO_LISTING_DATE, send_now=True)
        assert summary.sending.sent == 1
        digest = outbox.messages()[-1]
        html = digest.get_body(("html",)).get_content()
        text = digest.get_body(("plain",)).get_content()
        # Each full entry in the email: its Japanese title and abstract, both marked.
        full_entries = html.count('id="p-')
        assert full_entries >= 10 and html.count('lang="ja"') == 2 * full_entries
        assert "translation not available" not in text
        assert JAPANESE_TITLE in html and JAPANESE_SENTENCE in text
        assert 'lang="zh"' not in html
        assert not re.search(r"[\u4e00-\u9fff]{2,}(?:的|了|和)", html)  # no recorded Chinese
    finally:
        server.close()
