"""The subscription site through Flask's test client: sign-up, double opt-in,
manage, unsubscribe, and a table of hostile input that must store nothing."""

import logging
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import TEMPLATES, Outbox, empty_tables
from flask import Flask
from redis import Redis
from rq import Queue
from smtp_server import SmtpSink, run_smtp
from sqlalchemy import event, func, select

from newsletter import create_app, db, ratelimit, replace_settings
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from newsletter.tokens import make_token
from worker.queue import QUEUE_NAME
from worker.schedule import AppWorker

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    ratelimit.reset_local()


def new_app(config: dict) -> Flask:
    """An app of a test's own settings, with the session's compiled page templates.

    As the `app` fixture's (tests/conftest.py): compiling them again was most of
    making one.
    """
    app = create_app(config)
    app.jinja_env.bytecode_cache = TEMPLATES
    return app


def csrf_from(client, url: str = "/") -> str:
    page = client.get(url)
    return CSRF.search(page.get_data(as_text=True)).group(1)


def sign_up(client, **fields):
    form = {
        "email": "ada@example.org",
        "keywords": "reinforcement learning\ndiffusion policy",
        "language": "en",
        "timezone": "Europe/Berlin",
        "delivery_hour": "asap",
    }
    form.update(fields)
    form.setdefault("csrf_token", csrf_from(client))
    return client.post("/", data=form)


def links_in(message) -> list[str]:
    return re.findall(r"https?://\S+", message.get_body(("plain",)).get_content())


def path_of(url: str) -> str:
    return url.removeprefix("http://digest.test")


def subscriber_count() -> int:
    return db.session().scalar(select(func.count()).select_from(Subscriber))


def test_sign_up_confirm_manage_unsubscribe(client, outbox):
    response = sign_up(client, email="Ada@Example.org")
    assert response.status_code == 302 and response.location.endswith("/check-email")
    subscriber = db.session().scalars(select(Subscriber)).one()
    assert subscriber.status is SubscriberStatus.UNCONFIRMED
    assert subscriber.keyword_lines == ["reinforcement learning", "diffusion policy"]
    assert subscriber.timezone == "Europe/Berlin"

    [message] = outbox.messages()
    assert message["To"] == "Ada@example.org"
    assert message.get_body(("html",)) is not None
    [confirm_link] = [link for link in links_in(message) if "/confirm/" in link]

    # Opening the link (as a mail scanner would) changes nothing.
    page = client.get(path_of(confirm_link))
    assert page.status_code == 200 and b"Confirm subscription" in page.data
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.UNCONFIRMED

    token = csrf_from(client, path_of(confirm_link))
    response = client.post(path_of(confirm_link), data={"csrf_token": token})
    assert response.status_code == 302 and "/manage/" in response.location
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.CONFIRMED and subscriber.confirmed_at.tzinfo

    manage = path_of(response.location.split("?")[0])
    token = csrf_from(client, manage)
    response = client.post(
        manage,
        data={
            "csrf_token": token,
            "keywords": "  Diffusion   Policy \ndiffusion policy\ncat:cs.RO grasping",
            "language": "en",
            "timezone": "Asia/Shanghai",
            "delivery_hour": "7",
            "include_replacements": "on",
        },
    )
    assert response.status_code == 302
    db.session().expire_all()
    assert subscriber.keyword_lines == ["Diffusion Policy", "cat:cs.RO grasping"]
    assert (subscriber.timezone, subscriber.delivery_hour, subscriber.include_replacements) == (
        "Asia/Shanghai",
        7,
        True,
    )

    response = client.post(manage + "/pause", data={"csrf_token": token})
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.PAUSED
    client.post(manage + "/resume", data={"csrf_token": token})
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.CONFIRMED

    unsubscribe = (
        f"/unsubscribe/{make_token('test-secret-key', 'unsubscribe', subscriber.public_id)}"
    )
    assert b"Unsubscribe" in client.get(unsubscribe).data
    response = client.post(unsubscribe, data={"csrf_token": csrf_from(client, unsubscribe)})
    assert response.status_code == 200 and b"You are unsubscribed" in response.data
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.UNSUBSCRIBED and subscriber.unsubscribed_at


def test_the_confirmation_email_goes_out_over_smtp(app, client):
    sink = SmtpSink()
    with run_smtp(sink) as port:
        replace_settings(app, SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none")
        assert sign_up(client).status_code == 302
    [message] = sink.messages()
    assert message["To"] == "ada@example.org"
    assert message["From"] == "arXiv digest <digest@digest.test>"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in message.iter_parts())
    [confirm] = [link for link in re.findall(r"https?://\S+", text) if "/confirm/" in link]
    assert confirm.replace("&", "&amp;") in html


def test_an_internationalized_domain_is_stored_in_its_ascii_form(client):
    assert sign_up(client, email="ada@Bücher.example").status_code == 302
    assert db.session().scalars(select(Subscriber)).one().email == "ada@xn--bcher-kva.example"


def test_known_address_gets_its_manage_link_and_the_same_answer(client, outbox):
    first = sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    subscriber.status = SubscriberStatus.CONFIRMED
    db.session().commit()

    again = sign_up(client, email="ADA@example.org", keywords="something else")
    assert (again.status_code, again.location) == (first.status_code, first.location)
    assert subscriber_count() == 1
    db.session().expire_all()
    assert subscriber.keyword_lines == ["reinforcement learning", "diffusion policy"]
    second = outbox.messages()[-1]
    assert any("/manage/" in link for link in links_in(second))
    assert not any("/confirm/" in link for link in links_in(second))


def test_expired_confirmation_link_says_so_and_offers_a_new_one(client, outbox, monkeypatch):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    eight_days_ago = time.time() - 8 * 24 * 3600
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: eight_days_ago)
    old = make_token("test-secret-key", "confirm", subscriber.public_id)
    monkeypatch.undo()

    page = client.get(f"/confirm/{old}")
    assert page.status_code == 410 and b"expired" in page.data
    response = client.post(f"/confirm/{old}", data={"csrf_token": csrf_from(client)})
    assert response.status_code == 410
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.UNCONFIRMED

    client.post(f"/confirm/{old}/resend", data={"csrf_token": csrf_from(client)})
    assert len(outbox.messages()) == 2
    [fresh] = [link for link in links_in(outbox.messages()[-1]) if "/confirm/" in link]
    response = client.post(path_of(fresh), data={"csrf_token": csrf_from(client)})
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.CONFIRMED


def test_tokens_serve_one_purpose_only(client):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    manage = make_token("test-secret-key", "manage", subscriber.public_id)
    unsubscribe = make_token("test-secret-key", "unsubscribe", subscriber.public_id)
    assert client.get(f"/manage/{manage}").status_code == 200
    assert client.get(f"/manage/{unsubscribe}").status_code == 404
    assert client.get(f"/confirm/{manage}").status_code == 404
    assert client.get(f"/unsubscribe/{manage}").status_code == 404
    assert client.get("/manage/garbage").status_code == 404
    forged = make_token("another-key", "manage", subscriber.public_id)
    assert client.get(f"/manage/{forged}").status_code == 404
    assert "ada" not in manage.lower() and "example" not in manage.lower()


def test_one_click_unsubscribe_needs_no_cookie_or_csrf(app, client):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    token = make_token("test-secret-key", "unsubscribe", subscriber.public_id)
    bare = app.test_client()  # no session cookie at all

    assert bare.get(f"/unsubscribe/one-click/{token}").status_code == 200  # a page, no change
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.UNCONFIRMED

    wrong = bare.post(f"/unsubscribe/one-click/{token}", data={"List-Unsubscribe": "Nope"})
    assert wrong.status_code == 400
    response = bare.post(
        f"/unsubscribe/one-click/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200 and "Location" not in response.headers
    db.session().expire_all()
    assert subscriber.status is SubscriberStatus.UNSUBSCRIBED


def test_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in response.get_data(as_text=True)


def test_sign_ups_are_rate_limited_per_address_and_per_ip(app, client):
    replace_settings(app, SIGNUP_LIMIT_PER_ADDRESS=2)
    first = time.time()
    for _ in range(2):
        assert sign_up(client).status_code == 302
    limited = sign_up(client)
    assert limited.status_code == 429 and b"Too many" in limited.data
    # The first attempt leaves the hour's window at first + 3600: that many seconds, rounded up.
    assert first + 3600 - time.time() <= int(limited.headers["Retry-After"]) <= 3600

    replace_settings(app, SIGNUP_LIMIT_PER_IP=3)
    responses = [sign_up(client, email=f"user{i}@example.org").status_code for i in range(3)]
    assert responses[-1] == 429


def test_bilingual_is_offered_only_with_a_translation_backend(app, client):
    assert b"en+zh" not in client.get("/").data
    assert sign_up(client, language="en+zh").status_code == 400
    replace_settings(app, TRANSLATION_BACKEND="openai")
    assert b"en+zh" in client.get("/").data
    assert sign_up(client, language="en+zh").status_code == 302
    assert db.session().scalars(select(Subscriber)).one().language == "en+zh"


def test_bilingual_follows_translation_language(app, client):
    replace_settings(app, TRANSLATION_BACKEND="openai", TRANSLATION_LANGUAGE="ja")
    page = client.get("/").get_data(as_text=True)
    assert '<option value="en+ja">English + 日本語</option>' in page
    # The language switch names 简体中文 (the site's language), the form's choices do not.
    assert "en+zh" not in page and "English + 简体中文" not in page
    assert sign_up(client, language="en+zh").status_code == 400
    assert sign_up(client, language="en+ja").status_code == 302
    subscriber = db.session().scalars(select(Subscriber)).one()
    assert subscriber.language == "en+ja"

    manage = f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"
    assert '<option value="en+ja" selected>' in client.get(manage).get_data(as_text=True)


HOSTILE_SIGNUPS = [
    ("empty address", {"email": ""}, "email"),
    ("no at sign", {"email": "ada.example.org"}, "email"),
    ("two at signs", {"email": "a@b@example.org"}, "email"),
    (
        "CR/LF header injection in address",
        {"email": "ada@example.org\r\nBcc: x@evil.test"},
        "email",
    ),
    ("oversized address", {"email": "a" * 300 + "@example.org"}, "email"),
    ("NUL in address", {"email": "ada\x00@example.org"}, "email"),
    ("non-ASCII local part (needs SMTPUTF8)", {"email": "用户@example.org"}, "email"),
    ("no keywords", {"keywords": "  \n \n"}, "keywords"),
    ("10,000-character keyword", {"keywords": "x" * 10_000}, "keywords"),
    ("500 keyword lines", {"keywords": "\n".join(f"topic {i}" for i in range(500))}, "keywords"),
    ("HTML/script keyword", {"keywords": "<script>alert(1)</script>"}, "keywords"),
    ("unbalanced quote", {"keywords": 'reinforcement "learning'}, "keywords"),
    ("unknown operator", {"keywords": "foo:bar"}, "keywords"),
    ("control character in keyword", {"keywords": "deep\x07learning"}, "keywords"),
    ("unknown timezone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("CR/LF in timezone", {"timezone": "UTC\r\nX: y"}, "timezone"),
    ("path in timezone", {"timezone": "../../etc/passwd"}, "timezone"),
    ("unknown language", {"language": "klingon"}, "language"),
    ("hour out of range", {"delivery_hour": "25"}, "delivery_hour"),
    # str.isdigit() holds for these, int() fails on the first three (a 500 once) and
    # reads the last two as 1 and 3: only ASCII digits are hours.
    ("superscript two hour", {"delivery_hour": "²"}, "delivery_hour"),
    ("superscript three hour", {"delivery_hour": "³"}, "delivery_hour"),
    ("circled one hour", {"delivery_hour": "①"}, "delivery_hour"),
    ("Devanagari one hour", {"delivery_hour": "१"}, "delivery_hour"),
    ("Arabic-Indic three hour", {"delivery_hour": "٣"}, "delivery_hour"),
    ("fullwidth seven hour", {"delivery_hour": "７"}, "delivery_hour"),
    ("ideographic space around hour", {"delivery_hour": "7\u3000"}, "delivery_hour"),
    ("negative hour", {"delivery_hour": "-1"}, "delivery_hour"),
    ("server clock timezone", {"timezone": "localtime"}, "timezone"),
    ("placeholder timezone", {"timezone": "Factory"}, "timezone"),
    ("posix/ copy of a zone", {"timezone": "posix/Europe/Berlin"}, "timezone"),
    ("right/ copy of a zone", {"timezone": "right/UTC"}, "timezone"),
    ("posixrules", {"timezone": "posixrules"}, "timezone"),
    ("zone in other case", {"timezone": "europe/berlin"}, "timezone"),
    ("fullwidth language", {"language": "ｅｎ"}, "language"),
]


@pytest.mark.parametrize(
    "fields, field",
    [(f, n) for _, f, n in HOSTILE_SIGNUPS],
    ids=[name for name, _, _ in HOSTILE_SIGNUPS],
)
def test_bad_sign_up_input_is_refused_with_a_message_and_stores_nothing(
    client, outbox, fields, field
):
    response = sign_up(client, **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert "<script>alert(1)</script>" not in page
    assert subscriber_count() == 0
    assert db.session().scalar(select(func.count()).select_from(Keyword)) == 0
    assert outbox.messages() == []


# Every field of the settings both forms share, with a value it must refuse; the
# manage form must keep the stored settings.
MANAGE_REFUSALS = [
    (name, fields)
    for name, fields, field in HOSTILE_SIGNUPS
    if field in ("keywords", "timezone", "language", "delivery_hour")
]


@pytest.mark.parametrize(
    "fields", [f for _, f in MANAGE_REFUSALS], ids=[n for n, _ in MANAGE_REFUSALS]
)
def test_the_manage_form_refuses_what_the_sign_up_form_refuses(client, fields):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    manage = f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"
    form = {
        "csrf_token": csrf_from(client, manage),
        "keywords": "graph neural networks",
        "language": "en",
        "timezone": "Asia/Tokyo",
        "delivery_hour": "6",
        **fields,
    }
    response = client.post(manage, data=form)
    assert response.status_code == 400
    [field] = [name for name in fields]
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    db.session().expire_all()
    assert (subscriber.timezone, subscriber.delivery_hour, subscriber.language) == (
        "Europe/Berlin",
        None,
        "en",
    )


@pytest.mark.parametrize(
    "raw, hour", [("0", 0), ("7", 7), ("07", 7), ("23", 23), (" 5 ", 5), ("asap", None), ("", None)]
)
def test_hours_in_ascii_digits_are_accepted(client, raw, hour):
    assert sign_up(client, delivery_hour=raw).status_code == 302
    assert db.session().scalars(select(Subscriber)).one().delivery_hour == hour


def test_every_offered_timezone_is_an_iana_place_and_accepted(client):
    page = client.get("/").get_data(as_text=True)
    offered = re.findall(r'<option value="([^"]+)">', page.split('id="timezones"')[1])
    assert "Europe/Berlin" in offered and "America/Argentina/Buenos_Aires" in offered
    assert not {"localtime", "Factory", "posixrules"} & set(offered)
    assert not [zone for zone in offered if zone.startswith(("posix/", "right/"))]
    assert sign_up(client, timezone="America/Argentina/Buenos_Aires").status_code == 302


def test_invalid_utf8_is_refused(client):
    token = csrf_from(client)
    body = (
        b"csrf_token=" + token.encode() + b"&email=ada%40example.org&language=en&timezone=UTC"
        b"&keywords=caf%C3%28+learning"
    )
    response = client.post("/", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and b"not valid UTF-8" in response.data
    assert subscriber_count() == 0


def multipart(fields: dict[str, bytes]) -> bytes:
    """A multipart/form-data body (boundary XX) of these fields, bytes as given."""
    parts = [
        b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
        for name, value in fields.items()
    ]
    return b"".join(parts) + b"--XX--\r\n"


def test_invalid_utf8_in_a_multipart_form_is_refused(client):
    fields = {
        "csrf_token": csrf_from(client).encode(),
        "email": b"ada@example.org",
        "timezone": b"UTC",
        "keywords": b"caf\xc3\x28 learning",
    }
    content_type = "multipart/form-data; boundary=XX"
    response = client.post("/", data=multipart(fields), content_type=content_type)
    assert response.status_code == 400 and b"not valid UTF-8" in response.data
    assert subscriber_count() == 0
    # The same form, readable, is taken.
    fields["keywords"] = "café learning".encode()
    response = client.post("/", data=multipart(fields), content_type=content_type)
    assert response.status_code == 302 and subscriber_count() == 1


@pytest.mark.parametrize("csrf_token", [None, "", "forged-token"])
def test_missing_or_wrong_csrf_token_is_refused(client, csrf_token):
    client.get("/")
    fields = {} if csrf_token is None else {"csrf_token": csrf_token}
    form = {
        "email": "ada@example.org",
        "keywords": "learning",
        "language": "en",
        "timezone": "UTC",
        **fields,
    }
    response = client.post("/", data=form)
    assert response.status_code == 400 and b"expired" in response.data
    assert subscriber_count() == 0


def test_a_token_from_another_browser_session_is_refused(app, client):
    other = app.test_client()
    response = sign_up(client, csrf_token=csrf_from(other))
    assert response.status_code == 400 and b"expired" in response.data
    assert subscriber_count() == 0


def test_a_form_on_the_https_site_needs_no_referer(config, database_url):
    """Every page says Referrer-Policy: no-referrer, so browsers post forms without one."""
    empty_tables(database_url)
    app = new_app({**config, "BASE_URL": "https://digest.test"})
    with app.app_context():
        client = app.test_client()
        page = client.get("/", base_url="https://digest.test").get_data(as_text=True)
        form = {
            "csrf_token": CSRF.search(page).group(1),
            "email": "ada@example.org",
            "keywords": "learning",
            "timezone": "UTC",
        }
        response = client.post("/", data=form, base_url="https://digest.test")
        assert "Referer" not in response.request.headers
        assert response.status_code == 302
        assert subscriber_count() == 1
    app.extensions["db_engine"].dispose()


def test_oversized_body_is_refused_without_a_traceback(client):
    response = client.post("/", data={"keywords": "x" * 200_000, "csrf_token": csrf_from(client)})
    assert response.status_code == 413
    assert b"Traceback" not in response.data
    assert subscriber_count() == 0


def test_manage_form_rejects_bad_input_and_keeps_the_old_settings(client):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    manage = f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"
    response = client.post(
        manage,
        data={
            "csrf_token": csrf_from(client, manage),
            "keywords": "x" * 101,
            "timezone": "Nowhere",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="keywords-error"' in page and 'id="timezone-error"' in page
    db.session().expire_all()
    assert subscriber.keyword_lines == ["reinforcement learning", "diffusion policy"]
    assert subscriber.timezone == "Europe/Berlin"
    assert (
        client.post(manage + "/explode", data={"csrf_token": csrf_from(client, manage)}).status_code
        == 404
    )


def test_rate_limits_are_shared_by_every_web_process_through_redis(config, redis_url, database_url):
    """Two app instances (two gunicorn workers) count against one limit."""
    empty_tables(database_url)
    config.update(REDIS_URL=redis_url, SIGNUP_LIMIT_PER_ADDRESS=100, SIGNUP_LIMIT_PER_IP=3)
    answers = []
    for _ in range(2):
        app = new_app(config)
        with app.app_context():
            client = app.test_client()
            answers += [
                sign_up(client, email=f"u{len(answers)}-{i}@example.org").status_code
                for i in range(2)
            ]
        app.extensions["db_engine"].dispose()
    assert answers == [302, 302, 302, 429]


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_retry_after_counts_down_to_when_the_oldest_attempt_leaves_the_hour(
    config, database_url, request, storage
):
    empty_tables(database_url)
    if storage == "redis":
        config["REDIS_URL"] = request.getfixturevalue("redis_url")
    config.update(SIGNUP_LIMIT_PER_ADDRESS=1)
    app = new_app(config)
    with app.app_context():
        client = app.test_client()
        first = time.time()
        assert sign_up(client).status_code == 302
        waits = []
        for pause in (1, 0):
            refused = sign_up(client)
            assert refused.status_code == 429 and b"Too many" in refused.data
            waits.append(int(refused.headers["Retry-After"]))
            assert first + 3600 - time.time() <= waits[-1] <= 3600
            # A whole second later the wait, rounded up, is at least a second shorter.
            time.sleep(pause)
        assert waits[1] < waits[0]
        if storage == "redis":
            connection = Redis.from_url(config["REDIS_URL"])
            keys = connection.keys("*ratelimit*")
            connection.close()
            assert b"LIMITS:newsletter:ratelimit/address:ada@example.org" in keys
    app.extensions["db_engine"].dispose()


def redis_calls(connection: Redis) -> Counter:
    """Redis's count of calls per command so far (INFO itself left out)."""
    stats = connection.info("commandstats")
    return Counter({name: stat["calls"] for name, stat in stats.items() if name != "cmdstat_info"})


def resolvable_difference(differences: list[float], floor: float) -> float:
    """The largest median of paired differences that noise alone explains: `floor`,
    or four standard errors of the median (from the MAD) when the run is noisier."""
    center = statistics.median(differences)
    spread = 1.4826 * statistics.median(abs(d - center) for d in differences)
    return max(floor, 4 * 1.2533 * spread / len(differences) ** 0.5)


def test_sign_up_takes_as_long_for_a_known_address_as_for_a_new_one(
    config, redis_url, database_url
):
    """The answer's timing must not tell whether an address is subscribed."""
    empty_tables(database_url)
    config.update(REDIS_URL=redis_url, SIGNUP_LIMIT_PER_IP=10_000, SIGNUP_LIMIT_PER_ADDRESS=10_000)
    app = new_app(config)
    rounds = 50
    with app.app_context():
        session = db.session()
        session.add_all(
            Subscriber(
                email=f"known{i}@example.org",
                email_key=f"known{i}@example.org",
                status=SubscriberStatus.CONFIRMED,
                keywords=[Keyword(position=0, text="graph neural networks")],
            )
            for i in range(rounds)
        )
        session.commit()
        client = app.test_client()
        token = csrf_from(client)
        for i in range(5):  # warm up templates, connections and the queue
            sign_up(client, email=f"warm{i}@example.org", csrf_token=token)
        # Wall time and this thread's CPU time per request, in pairs made back to back.
        wall: dict[str, list[float]] = {"known": [], "new": []}
        cpu: dict[str, list[float]] = {"known": [], "new": []}
        statements: dict[str, set[tuple[str, ...]]] = {"known": set(), "new": set()}
        commands: dict[str, set[tuple[tuple[str, int], ...]]] = {"known": set(), "new": set()}
        seen: list[str] = []
        engine = app.extensions["db_engine"]
        record = lambda *args: seen.append(args[2].split()[0])  # noqa: E731 (statement verb)
        event.listen(engine, "before_cursor_execute", record)
        redis = Redis.from_url(redis_url)
        for i in range(rounds):
            # Alternate which goes first, so drift over the run hits both alike.
            order = ("known", "new") if i % 2 else ("new", "known")
            for kind in order:
                seen.clear()
                before = redis_calls(redis)
                start_wall, start_cpu = time.perf_counter(), time.thread_time()
                response = sign_up(client, email=f"{kind}{i}@example.org", csrf_token=token)
                cpu[kind].append(time.thread_time() - start_cpu)
                wall[kind].append(time.perf_counter() - start_wall)
                assert response.status_code == 302
                statements[kind].add(tuple(seen))
                commands[kind].add(tuple(sorted((redis_calls(redis) - before).items())))
        event.remove(engine, "before_cursor_execute", record)
        redis.close()
        # The same database work on both paths (none: the job does the writing), the
        # same Redis commands (the limits and the job) ...
        assert statements["known"] == statements["new"]
        assert commands["known"] == commands["new"] and len(commands["new"]) == 1
        # ... and the same time, CPU and wall: the pairs' median difference within 2 ms,
        # or within what the noise of this run can tell apart (a loaded machine).
        for name, timings in (("cpu", cpu), ("wall", wall)):
            differences = [k - n for k, n in zip(timings["known"], timings["new"], strict=True)]
            bound = resolvable_difference(differences, floor=0.002)
            median = statistics.median(differences)
            print(
                f"sign-up {name} medians (ms): known {statistics.median(timings['known']) * 1000:.2f}, "
                f"new {statistics.median(timings['new']) * 1000:.2f}; "
                f"paired difference {median * 1000:.2f}, bound {bound * 1000:.2f}"
            )
            assert abs(median) <= bound, f"{name}: median difference {median * 1000:.2f} ms"

        # The queued jobs then do what each path promises.
        connection = Redis.from_url(redis_url)
        AppWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection, app=app).work(
            burst=True
        )
        connection.close()
        session.expire_all()
        new = session.scalars(select(Subscriber).where(Subscriber.email.like("new%"))).all()
        assert len(new) == rounds and {s.status for s in new} == {SubscriberStatus.UNCONFIRMED}
        messages = Outbox(Path(config["OUTBOX_DIR"])).messages()
        links = {message["To"]: " ".join(links_in(message)) for message in messages}
        assert "/confirm/" in links["new7@example.org"]
        assert "/manage/" in links["known7@example.org"]
        assert "/confirm/" not in links["known7@example.org"]
        assert len(messages) == 2 * rounds + 5
    app.extensions["db_engine"].dispose()


@pytest.mark.parametrize(
    "base_url, hsts", [("https://digest.test", True), ("http://digest.test", False)]
)
def test_hsts_is_sent_when_the_site_is_https(config, database_url, base_url, hsts):
    empty_tables(database_url)
    app = new_app({**config, "BASE_URL": base_url})
    with app.app_context():
        headers = app.test_client().get("/").headers
    app.extensions["db_engine"].dispose()
    if hsts:
        assert headers["Strict-Transport-Security"] == "max-age=31536000"
    else:
        assert "Strict-Transport-Security" not in headers


@pytest.mark.parametrize(
    "base_url, dev, warned",
    [
        ("http://digest.test", False, True),
        ("http://127.0.0.1:5000", True, False),
        ("https://digest.test", False, False),
    ],
)
def test_an_http_base_url_outside_dev_mode_is_warned_at_start(
    config, database_url, caplog, base_url, dev, warned
):
    caplog.set_level(logging.WARNING, logger="newsletter")
    app = create_app({**config, "BASE_URL": base_url, "DEV": dev})
    app.extensions["db_engine"].dispose()
    warnings = [r.getMessage() for r in caplog.records if "BASE_URL" in r.getMessage()]
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert "https" in warnings[0] and "RFC 8058" in warnings[0]


def field_attributes(page: str, field_id: str) -> str:
    """The opening tag of the form control with id `field_id`."""
    return re.search(rf'<(?:input|textarea|select) id="{field_id}"[^>]*>', page).group(0)


def test_sign_up_reports_every_bad_keyword_line_and_marks_the_fields(client):
    keywords = "\n".join(
        ["reinforcement learning", 'broken "quote', "", "x" * 101, "au:", "diffusion policy"]
    )
    response = sign_up(client, email="not an address", keywords=keywords, timezone="Nowhere")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    error = re.search(r'<div class="error" id="keywords-error".*?</div>', page, re.S).group(0)
    # Numbered as the lines stand in the box: the blank line 3 counts.
    items = re.findall(r"<li>(.*?)</li>", error, re.S)
    assert [item.split(" ", 2)[:2] for item in items] == [
        ["Line", "2"],
        ["Line", "4"],
        ["Line", "5"],
    ]
    assert "longer than 100 characters" in items[1]
    assert "up to 100 characters each" in page
    for field_id, described in (
        ("email", "email-error"),
        ("keywords", "keywords-help keywords-error"),
        ("timezone", "timezone-hint timezone-error"),
    ):
        tag = field_attributes(page, field_id)
        assert 'aria-invalid="true"' in tag, tag
        assert f'aria-describedby="{described}"' in tag, tag
    for field_id in ("language", "delivery_hour"):
        assert "aria-invalid" not in field_attributes(page, field_id)
    assert subscriber_count() == 0


def test_a_valid_form_marks_no_field_invalid(client):
    page = client.get("/").get_data(as_text=True)
    assert "aria-invalid" not in page
    assert 'aria-describedby="keywords-help"' in field_attributes(page, "keywords")


def test_manage_form_reports_every_bad_keyword_line_with_aria(client):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    manage = f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"
    response = client.post(
        manage,
        data={
            "csrf_token": csrf_from(client, manage),
            "keywords": "au:\n-cat:cs.RO\ngood words",
            "timezone": "UTC",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "2 lines need a change" in page
    assert "Line 1 (au:)" in page and "Line 2 (-cat:cs.RO)" in page
    tag = field_attributes(page, "keywords")
    assert 'aria-invalid="true"' in tag and "keywords-error" in tag
    assert "aria-invalid" not in field_attributes(page, "timezone")
