"""Hostile input to every form and route: never a 5xx.

A body over the cap is a 413 whatever its framing (checked on real servers,
since Flask's test client always sends a Content-Length). Hypothesis posts
arbitrary text (any Unicode, control characters, huge values, repeated and
missing fields, raw bodies of any bytes) to sign-up, confirm, manage,
unsubscribe, one-click, the digest page and the dev outbox, on whichever
database the suite runs on. For a long fuzz by hand, set
HOSTILE_INPUT_EXAMPLES (examples per route; the default keeps the suite fast).
"""

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from conftest import TEMPLATES, empty_tables, free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server

from newsletter import create_app, db, ratelimit
from newsletter.config import settings as app_settings
from newsletter.models import Keyword, Subscriber
from newsletter.tokens import make_token
from worker.demo.load import DEMO_LISTING_DATE, load_demo

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EXAMPLES = int(os.environ.get("HOSTILE_INPUT_EXAMPLES", "200"))
CAP = 64 * 1024


# --- bodies over the cap, chunked, on real servers ---


@pytest.fixture(params=["werkzeug", "gunicorn"])
def live_server(request, config, database_url, tmp_path):
    """The site on a real HTTP server: Werkzeug's in a thread, or gunicorn as deployed."""
    empty_tables(database_url)
    port = free_port()
    if request.param == "werkzeug":
        app = create_app(config)
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
        server.shutdown()
        app.extensions["db_engine"].dispose()
        return
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NEWSLETTER_DEV")}
    env.update(
        SECRET_KEY=config["SECRET_KEY"],
        DATABASE_URL=database_url,
        BASE_URL="https://digest.test",
        OUTBOX_DIR=config["OUTBOX_DIR"],
    )
    process = subprocess.Popen(
        [shutil.which("gunicorn") or "gunicorn", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "newsletter:create_app()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/", timeout=10)
                break
            except requests.RequestException:
                # The master listens at once; its worker may still be importing.
                assert process.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def post_chunked(base: str, cookie: str, pieces: list[bytes]) -> bytes:
    """POST / with Transfer-Encoding: chunked; return the status line and headers."""
    host, port = base.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()

    def send() -> None:
        # The server may answer and close before the body is all sent.
        try:
            connection.sendall(head)
            for piece in pieces:
                connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sender.join(30)
        connection.close()
    return answer.split(b"\r\n\r\n")[0]


def test_a_chunked_body_over_the_cap_is_refused_and_one_within_it_is_read(
    live_server, database_url
):
    page = requests.get(live_server + "/", timeout=10)
    token = CSRF.search(page.text).group(1)
    cookie = "; ".join(f"{name}={value}" for name, value in page.cookies.items())
    form = f"csrf_token={token}&keywords=graph+neural+networks&timezone=UTC&language=en"

    # 10 MB whose email field lies past the cap (it used to be cut off and accepted).
    filler = b"&notes=" + b"x" * (10 * 1024 * 1024)
    big = [form.encode(), *[filler[i : i + 65536] for i in range(0, len(filler), 65536)]]
    big.append(b"&email=ada%40example.org")
    assert post_chunked(live_server, cookie, big).startswith(b"HTTP/1.1 413")

    # Just over the cap, in small chunks.
    over = (form + "&notes=" + "y" * CAP + "&email=bob%40example.org").encode()
    pieces = [over[i : i + 1000] for i in range(0, len(over), 1000)]
    assert post_chunked(live_server, cookie, pieces).startswith(b"HTTP/1.1 413")

    # Within the cap a chunked sign-up works as any other.
    ok = (form + "&email=cy%40example.org").encode()
    assert post_chunked(live_server, cookie, [ok[:50], ok[50:]]).startswith(b"HTTP/1.1 302")
    engine = create_engine(database_url)
    with engine.connect() as connection:
        emails = connection.scalars(select(Subscriber.email)).all()
    engine.dispose()
    assert emails == ["cy@example.org"]


# --- fuzzing every route ---

FIELD_NAMES = [
    "email",
    "keywords",
    "language",
    "timezone",
    "delivery_hour",
    "include_replacements",
    "csrf_token",
    "List-Unsubscribe",
]
INTERESTING = [
    "",
    " ",
    "asap",
    "0",
    "23",
    "24",
    "-1",
    "²",
    "①",
    "१",
    "٣",
    "７",
    "en",
    "en+zh",
    "en+ja",
    "UTC",
    "localtime",
    "Factory",
    "posix/UTC",
    "../../etc/passwd",
    "on",
    "One-Click",
    "ada@example.org",
    "a@b@c",
    "\x00",
    "\r\nBcc: x@evil.test",
    '"unbalanced',
    "cat:",
    "au:",
    "-",
    "<script>alert(1)</script>",
    "reinforcement learning",
]
values = st.one_of(
    st.text(),  # any Unicode, control characters included
    st.sampled_from(INTERESTING),
    # Digits, numbers and spaces of every script: "²", "١٢", "\u3000".
    st.text(st.characters(categories=["Nd", "No", "Nl", "Zs"]), min_size=1, max_size=3),
    st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=3), st.integers(1, 40_000)),
    st.lists(st.sampled_from(INTERESTING + ["x"]), max_size=30).map("\n".join),
)
# Each known field present or missing, then repeated and unknown ones.
fields = st.builds(
    lambda known, extra: [*known.items(), *extra],
    st.fixed_dictionaries({}, optional={name: values for name in FIELD_NAMES}),
    st.lists(
        st.tuples(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=20)), values), max_size=6
    ),
)
raw_bodies = st.tuples(
    st.binary(max_size=4000),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "text/plain",
            "application/json",
        ]
    ),
)


@pytest.fixture(scope="module")
def fuzz_site(database_url, tmp_path_factory):
    """One app (dev mode, so the outbox is served) with one subscriber and the demo day."""
    empty_tables(database_url)
    config = {
        "TESTING": True,
        "DEV": True,
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": None,
        "BASE_URL": "https://digest.test",
        "SMTP_HOST": None,
        "OUTBOX_DIR": str(tmp_path_factory.mktemp("fuzz-outbox")),
        "TRANSLATION_BACKEND": "recorded",
        "SIGNUP_LIMIT_PER_IP": 1_000_000,
        "SIGNUP_LIMIT_PER_ADDRESS": 1_000_000,
    }
    app = create_app(config)
    app.jinja_env.bytecode_cache = TEMPLATES  # the session's compiled pages, as conftest's `app`
    with app.app_context():
        load_demo(db.session())
        subscriber = Subscriber(
            email="ada@example.org",
            email_key="ada@example.org",
            keywords=[Keyword(position=0, text="reinforcement learning")],
        )
        db.session().add(subscriber)
        db.session().commit()
        public_id = subscriber.public_id
    ratelimit.reset_local()
    yield app, public_id
    app.extensions["db_engine"].dispose()


def token_for(public_id: str, route: str) -> str:
    purpose = {"confirm": "confirm", "manage": "manage", "unsubscribe": "unsubscribe"}
    if route == "digest":
        return make_token("test-secret-key", "digest", [public_id, DEMO_LISTING_DATE.isoformat()])
    return make_token("test-secret-key", purpose[route], public_id)


# (method, path template, whose token); {token} and {name} are filled in per example.
ROUTES = {
    "sign-up": ("POST", "/", None),
    "confirm page": ("GET", "/confirm/{token}", "confirm"),
    "confirm": ("POST", "/confirm/{token}", "confirm"),
    "resend": ("POST", "/confirm/{token}/resend", "confirm"),
    "manage page": ("GET", "/manage/{token}", "manage"),
    "manage": ("POST", "/manage/{token}", "manage"),
    "manage action": ("POST", "/manage/{token}/{name}", "manage"),
    "unsubscribe page": ("GET", "/unsubscribe/{token}", "unsubscribe"),
    "unsubscribe": ("POST", "/unsubscribe/{token}", "unsubscribe"),
    "one-click": ("POST", "/unsubscribe/one-click/{token}", "unsubscribe"),
    "digest page": ("GET", "/digest/{token}", "digest"),
    "outbox": ("GET", "/dev/outbox/{name}", None),
    "outbox html": ("GET", "/dev/outbox/{name}/html", None),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_no_input_to_any_route_gives_a_server_error(fuzz_site, route):
    app, public_id = fuzz_site
    method, template, purpose = ROUTES[route]
    client = app.test_client()
    csrf = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    outbox = Path(app_settings(app).OUTBOX_DIR)
    requests_sent = [0]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        form=fields,
        raw=st.one_of(st.none(), raw_bodies),
        real_token=st.booleans(),
        fuzzed_token=st.text(min_size=1),
        name=st.one_of(
            st.sampled_from(["pause", "resume", "explode"]),
            st.sampled_from(sorted(p.name for p in outbox.glob("*.eml")) or ["none.eml"]),
            st.text(min_size=1),
        ),
        with_csrf=st.sampled_from([True, True, True, False]),
        query=st.text(),
    )
    def check(form, raw, real_token, fuzzed_token, name, with_csrf, query):
        requests_sent[0] += 1
        token = token_for(public_id, purpose) if purpose and real_token else fuzzed_token
        path = template.format(token=quote(token, safe=""), name=quote(name, safe=""))
        if method == "GET":
            # gunicorn refuses a request line over 4 KB, so longer queries never arrive.
            query = urlencode([(key[:100], value[:500]) for key, value in form])[:4000]
            response = client.get(path + "?" + query)
            assert response.status_code < 500, (route, path[:200], response.status_code)
            return
        path += "?" + quote(query, safe="=&")
        if raw is not None:
            body, content_type = raw
            response = client.post(path, data=body, content_type=content_type)
        else:
            # A valid token first (the view reads the first), then the fuzzed fields.
            data = MultiDict([("csrf_token", csrf)] if with_csrf else [])
            for key, value in form:
                data.add(key, value)
            response = client.post(path, data=data)
        assert response.status_code < 500, (route, path[:200], response.status_code)
        assert b"Traceback" not in response.data

    with app.app_context():
        before = db.session().scalar(select(func.count()).select_from(Subscriber))
    check()
    print(f"{route}: {requests_sent[0]} requests, none answered 5xx")
    with app.app_context():
        # The site still answers and its data is still readable after the barrage.
        assert db.session().scalar(select(func.count()).select_from(Subscriber)) >= before
    assert client.get("/").status_code == 200
