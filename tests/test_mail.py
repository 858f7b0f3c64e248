"""worker/delivery/mail.py: digest headers, DKIM, and the Mailer against a real aiosmtpd server.

The SMTP server is tests/smtp_server.py.
"""

import base64
import re
import subprocess
import threading
import time
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime

import dkim
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import free_port
from smtp_server import SmtpSink, run_smtp

from newsletter.config import Settings, load_settings
from worker.delivery.mail import Mailer
from worker.delivery.messages import build_digest_message, sign_message
from worker.delivery.smtp import PermanentFailure, SetupFailure, TemporaryFailure

SUBJECT = (
    "arXiv digest · Fri 29 May 2026 · 66 papers: reinforcement learning (65), diffusion policy (2)"
)
CHINESE = "基于扩散策略的机器人操作：一种强化学习方法，" * 40  # one long line of CJK
LONG_LINE = "word " * 400
# As long as a real one-click link (a signed token), far past 78 characters.
ONE_CLICK = (
    "https://digest.example.org/unsubscribe/one-click/"
    "ImFiY2RlZjAxMjM0NTY3ODkwYWJjZGVmMDEyMzQ1Ig.aBcDeF." + "x" * 43
)
UNSUBSCRIBE_MAILTO = "<mailto:unsubscribe@digest.example.org?subject=unsubscribe>"


def mail_config(tmp_path, **overrides) -> Settings:
    values = {
        "MAIL_FROM": "arXiv digest <digest@digest.example.org>",
        "SMTP_SECURITY": "none",
        "SMTP_RETRY_DELAY": 0.01,
        "SMTP_TIMEOUT": 5,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    return replace(load_settings({}, str(tmp_path), dev=True), **{**values, **overrides})


def digest_message(
    config: Settings, to: str = "reader@example.com", message_id: str = "<1.2.3@digest.example.org>"
) -> EmailMessage:
    return build_digest_message(
        config,
        to=to,
        subject=SUBJECT,
        text=f"Papers\n{CHINESE}\n{LONG_LINE}\n",
        html=f"<p>{CHINESE}</p><p>{LONG_LINE}</p>",
        message_id=message_id,
        one_click_url=ONE_CLICK,
    )


@pytest.mark.parametrize(
    ("mailto", "expected"),
    [
        (None, f"<{ONE_CLICK}>"),
        ("unsubscribe@digest.example.org", f"<{ONE_CLICK}>, {UNSUBSCRIBE_MAILTO}"),
        ("mailto:unsubscribe@digest.example.org", f"<{ONE_CLICK}>, {UNSUBSCRIBE_MAILTO}"),
        (
            "mailto:u@digest.example.org?subject=stop",
            f"<{ONE_CLICK}>, <mailto:u@digest.example.org?subject=stop>",
        ),
    ],
)
def test_digest_message_headers_parse_back_rfc8058(tmp_path, mailto, expected):
    config = mail_config(tmp_path, LIST_UNSUBSCRIBE_MAILTO=mailto)
    raw = digest_message(config).as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)

    assert parsed["From"].addresses[0].display_name == "arXiv digest"
    assert parsed["From"].addresses[0].addr_spec == "digest@digest.example.org"
    assert parsed["To"] == "reader@example.com"
    assert parsed["Subject"] == SUBJECT
    assert parsedate_to_datetime(parsed["Date"]).tzinfo is not None
    assert parsed["Message-ID"] == "<1.2.3@digest.example.org>"
    assert parsed["List-Id"] == "arXiv digest <digest.digest.example.org>"
    assert parsed["List-Unsubscribe"] == expected
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Precedence"] == "bulk"
    # The URL must reach the client as a URL, not as RFC 2047 encoded-words.
    assert f"<{ONE_CLICK}>".encode() in raw
    assert b"=?utf-8?" not in raw.split(b"\r\nSubject:")[0]

    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        content = part.get_content()
        assert CHINESE in content and LONG_LINE in content
    # 7-bit clean on the wire, and no line near the 998-octet limit.
    raw.decode("ascii")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 78


@pytest.mark.parametrize(
    "url",
    [
        "https://digest.example.org/unsubscribe/a b",
        "https://digest.example.org/unsubscribe/a>, <https://evil.example",
        "https://digest.example.org/unsubscribe/a\r\nBcc: victim@example.com",
        "",
    ],
)
def test_unsafe_unsubscribe_url_is_refused(tmp_path, url):
    with pytest.raises(ValueError):
        build_digest_message(
            mail_config(tmp_path),
            to="r@example.com",
            subject="s",
            text="t",
            html="h",
            message_id="<1@x>",
            one_click_url=url,
        )


def openssl(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=input).stdout


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    """An RSA private key (PEM path) and its DKIM DNS record."""
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    openssl("genrsa", "-out", str(key), "2048")
    public_der = openssl("rsa", "-in", str(key), "-pubout", "-outform", "DER")
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    return key, record


def dns_for(record: bytes):
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.digest.example.org."
        return record

    return dnsfunc


def test_dkim_signature_verifies_and_covers_list_unsubscribe(tmp_path, rsa_key):
    key, record = rsa_key
    config = mail_config(
        tmp_path,
        DKIM_DOMAIN="digest.example.org",
        DKIM_SELECTOR="mail2026",
        DKIM_PRIVATE_KEY_PATH=str(key),
        LIST_UNSUBSCRIBE_MAILTO="unsubscribe@digest.example.org",
    )
    with Mailer(config) as mailer:  # SMTP_HOST unset: the signed bytes go to the outbox
        mailer.send(digest_message(config))
    (written,) = (tmp_path / "outbox").glob("*.eml")
    signed = written.read_bytes()

    assert signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    header = message_from_bytes(signed, policy=policy.default)["DKIM-Signature"]
    tags = dict(part.split("=", 1) for part in re.sub(r"\s", "", header).split(";") if part)
    covered = set(tags["h"].lower().split(":"))
    required = {"from", "to", "subject", "date", "message-id"}
    assert required | {"list-unsubscribe", "list-unsubscribe-post"} <= covered
    # A changed unsubscribe link breaks the signature: it is covered.
    tampered = signed.replace(b"subject=unsubscribe", b"subject=subscribe")
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dns_for(record))


def test_sign_message_refuses_a_key_that_is_not_one(tmp_path):
    with pytest.raises(dkim.KeyFormatError):
        sign_message(b"From: a@b\r\n\r\nx\r\n", domain="b", selector="s", private_key=b"not a key")


def test_mailer_sends_over_one_connection(tmp_path):
    sink = SmtpSink()
    with run_smtp(sink) as port:
        config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        with Mailer(config) as mailer:
            for n in range(3):
                message_id = f"<{n}@digest.example.org>"
                mailer.send(digest_message(config, to=f"r{n}@example.com", message_id=message_id))
    assert sink.connections == 1
    assert [rcpt for _, rcpt, _ in sink.received] == [[f"r{n}@example.com"] for n in range(3)]
    assert {mail_from for mail_from, _, _ in sink.received} == {"digest@digest.example.org"}
    for n, message in enumerate(sink.messages()):
        assert message["Message-ID"] == f"<{n}@digest.example.org>"
        assert message["Subject"] == SUBJECT
        assert CHINESE in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    ("where", "replies", "outcome", "tries"),
    [
        # 4xx retried with backoff, then accepted.
        ("rcpt", ["451 4.7.1 Greylisted, try again"] * 2, None, 3),
        ("data", ["452 4.3.1 Insufficient storage"], None, 2),
        # Still 4xx after SMTP_RETRIES (3) retries: temporary, 4 tries.
        ("rcpt", ["451 4.7.1 Greylisted, try again"] * 9, TemporaryFailure, 4),
        # 5xx: permanent at once, no retry, reply text kept.
        ("rcpt", ["550 5.1.1 No such user"], PermanentFailure, 1),
        ("data", ["554 5.7.1 Message rejected as spam"], PermanentFailure, 1),
    ],
)
def test_mailer_retries_4xx_and_gives_5xx_up(tmp_path, where, replies, outcome, tries):
    sink = SmtpSink()
    target = "reader@example.com"
    (sink.rcpt_replies if where == "rcpt" else sink.data_replies)[target].extend(replies)
    with run_smtp(sink) as port:
        config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        with Mailer(config) as mailer:
            if outcome is None:
                mailer.send(digest_message(config, to=target))
                assert sink.count() == 1
            else:
                with pytest.raises(outcome) as caught:
                    mailer.send(digest_message(config, to=target))
                assert caught.value.reply == replies[0]
                assert caught.value.code == int(replies[0][:3])
                assert sink.count() == 0
            # The next recipient still gets through on the same Mailer.
            other = digest_message(config, to="other@example.com", message_id="<o@example.org>")
            mailer.send(other)
    assert sink.rcpt_attempts[target] == tries
    assert sink.messages()[-1]["To"] == "other@example.com"


def test_mailer_reports_an_unreachable_server_as_a_connection_failure(tmp_path):
    config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_RETRIES=2)
    started = time.monotonic()
    with Mailer(config) as mailer, pytest.raises(TemporaryFailure) as caught:
        mailer.send(digest_message(config))
    assert caught.value.connection
    assert "connection" in caught.value.reply
    # Backoff 0.01 s then 0.02 s between the three tries.
    assert time.monotonic() - started >= 0.03


def test_each_retry_is_one_warning_line(tmp_path, caplog):
    config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_RETRIES=2)
    with Mailer(config) as mailer, pytest.raises(TemporaryFailure):
        mailer.deliver("digest@digest.example.org", "r@example.com", b"Subject: x\r\n\r\nx\r\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "worker.delivery.mail"]
    assert len(lines) == 2  # the third, last failure is raised, not logged
    assert lines[0].startswith(
        "temporary SMTP failure for r@example.com (try 1 of 3, again in 0.01 s)"
    )
    assert lines[1].startswith(
        "temporary SMTP failure for r@example.com (try 2 of 3, again in 0.02 s)"
    )


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    )
    return cert, key


class Authenticator:
    """Accepts mailer / s3cret and counts the logins it accepted."""

    def __init__(self):
        self.logins = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data == (b"mailer", b"s3cret")
        self.logins += ok
        # handled=False: aiosmtpd itself answers 535 to a refused login.
        return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize(
    ("security", "password", "outcome"),
    [
        ("starttls", "s3cret", None),
        ("ssl", "s3cret", None),
        ("starttls", "wrong", SetupFailure),
    ],
)
def test_mailer_uses_tls_and_auth_from_config(
    tmp_path, tls_files, monkeypatch, security, password, outcome
):
    import ssl

    cert, key = tls_files
    # The client verifies the server as in production; it trusts our test CA only.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    if security == "starttls":
        options = dict(tls_context=server_context, require_starttls=True, auth_required=True)
    else:
        # Implicit TLS: aiosmtpd counts only STARTTLS as TLS for its AUTH rules.
        options = dict(ssl_context=server_context, auth_require_tls=False)
    sink, authenticator = SmtpSink(), Authenticator()
    with run_smtp(sink, authenticator=authenticator, **options) as port:
        config = mail_config(
            tmp_path,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=port,
            SMTP_SECURITY=security,
            SMTP_USERNAME="mailer",
            SMTP_PASSWORD=password,
        )
        with Mailer(config) as mailer:
            if outcome is None:
                mailer.send(digest_message(config))
            else:
                with pytest.raises(outcome) as caught:
                    mailer.send(digest_message(config))
                assert caught.value.reply.startswith("535")
    assert sink.count() == authenticator.logins == (1 if outcome is None else 0)


# Four sends after a warm-up one at 5/s: the last goes >= 3 intervals after the first.
@pytest.mark.parametrize(("rate", "minimum_seconds"), [(5.0, 0.6), (0.0, 0.0)])
def test_mailer_throttles_to_max_per_second(tmp_path, monkeypatch, rate, minimum_seconds):
    # The sleeps of this thread, still slept: the throttle waits by sleeping, so no
    # sleep at all tells "not throttled" apart from "slow", which a busy machine is.
    sleeps = []
    sleep, caller = time.sleep, threading.get_ident()

    def recorded_sleep(seconds: float) -> None:
        if threading.get_ident() == caller:
            sleeps.append(seconds)
        sleep(seconds)

    sink = SmtpSink()
    with run_smtp(sink) as port:
        config = mail_config(
            tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_MAX_PER_SECOND=rate
        )
        with Mailer(config) as mailer:
            mailer.send(digest_message(config, message_id="<warm@digest.example.org>"))
            with monkeypatch.context() as patch:
                patch.setattr(time, "sleep", recorded_sleep)
                started = time.monotonic()
                for n in range(4):
                    mailer.send(digest_message(config, message_id=f"<{n}@digest.example.org>"))
                elapsed = time.monotonic() - started
    assert sink.count() == 5
    assert elapsed >= minimum_seconds  # a throttle's slots: never sooner, however busy
    # Throttled, the mailer slept (the spy sees it; none only if all four sends took
    # a whole interval each); unthrottled, it never did.
    assert bool(sleeps) is bool(rate)


def test_outbox_mode_writes_parseable_eml(tmp_path):
    config = mail_config(tmp_path, SMTP_HOST=None)
    with Mailer(config) as mailer:
        mailer.send(digest_message(config))
    (written,) = (tmp_path / "outbox").glob("*.eml")
    parsed = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert parseaddr(parsed["To"])[1] == "reader@example.com"
    assert parsed["List-Unsubscribe"] == f"<{ONE_CLICK}>"


# --- digests as pre-encoded bytes (worker/delivery/mime.py) ---

# Segments as a renderer hands them out: shared fragments, subscriber bits,
# segments that end mid-line, trailing spaces, dots and "From " at line starts.
SEGMENTS = (
    "Papers for you\n",
    "Hello ",
    "reader",
    ", here are today's papers:\n",
    f"{CHINESE}\n",
    f"{LONG_LINE}",
    "  trailing spaces  ",
    "\n.a line that starts with a dot\n",
    "From the start of a line\n",
    "",
    "a=b; 100% = done\t\n",
    "\n",
    "no newline at the end",
)


def mime_message(config: dict, subject: str = SUBJECT, segments=SEGMENTS) -> bytes:
    from datetime import UTC, datetime

    from worker.delivery.mime import DigestMime

    html = tuple(f"<p>{s}</p>" if n % 2 else s for n, s in enumerate(segments))
    return DigestMime(config).build(
        to="reader@example.com",
        subject=subject,
        text_segments=segments,
        html_segments=html,
        message_id="<1.2.3@digest.example.org>",
        one_click_url=ONE_CLICK,
        date=datetime(2026, 5, 29, 6, 0, tzinfo=UTC),
    )


def decoded(part) -> str:
    # MIME text is CRLF on the wire and after decoding; the renderer's lines end in \n.
    return part.get_content().replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("mailto", "subject"),
    [
        (None, SUBJECT),
        ("unsubscribe@digest.example.org", "arXiv digest · 29 May: 扩散策略 (2), " + "x" * 120),
        (None, "plain ASCII " * 20),
    ],
)
def test_digest_bytes_parse_back_with_every_header_and_the_exact_parts(tmp_path, mailto, subject):
    config = mail_config(tmp_path, LIST_UNSUBSCRIBE_MAILTO=mailto)
    raw = mime_message(config, subject)
    parsed = message_from_bytes(raw, policy=policy.default)

    assert parsed["From"].addresses[0].display_name == "arXiv digest"
    assert parsed["From"].addresses[0].addr_spec == "digest@digest.example.org"
    assert parsed["To"] == "reader@example.com"
    assert parsed["Subject"] == subject
    assert parsedate_to_datetime(parsed["Date"]).isoformat() == "2026-05-29T06:00:00+00:00"
    assert parsed["Message-ID"] == "<1.2.3@digest.example.org>"
    assert parsed["List-Id"] == "arXiv digest <digest.digest.example.org>"
    expected = f"<{ONE_CLICK}>" + (f", {UNSUBSCRIBE_MAILTO}" if mailto else "")
    assert parsed["List-Unsubscribe"] == expected
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Precedence"] == "bulk"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.defects == []
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for part in (text, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.defects == []
    assert decoded(text) == "".join(SEGMENTS)
    assert decoded(html) == "".join(f"<p>{s}</p>" if n % 2 else s for n, s in enumerate(SEGMENTS))
    # 7-bit, CRLF only, the URL intact, every line within 78 octets.
    raw.decode("ascii")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert f"<{ONE_CLICK}>".encode() in raw
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")) <= 998
    # Quoted-printable lines of at most 76 characters (RFC 2045), joins included.
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76


def test_each_shared_segment_is_encoded_once_and_the_cache_is_bounded():
    from worker.delivery.mime import SegmentCache, encode_body

    fragment = "A paper's entry, the same in every digest of the day. " * 20
    cache = SegmentCache(max_bytes=10_000)
    first = encode_body(("Hi ", "one", "\n", fragment), cache)
    second = encode_body(("Hi ", "two", "\n", fragment), cache)
    assert first.replace(b"one", b"two") == second
    assert len(cache._entries) == 1  # the short, per-subscriber bits are not kept
    assert cache.encode(fragment) is cache.encode(fragment)
    for n in range(20):
        cache.encode(f"{n} {fragment}")
    assert cache.size <= 10_000 and fragment not in cache._entries


def test_digest_bytes_go_through_smtp_unchanged(tmp_path):
    sink = SmtpSink()
    with run_smtp(sink) as port:
        config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        raw = mime_message(config)
        with Mailer(config) as mailer:
            mailer.deliver("digest@digest.example.org", "reader@example.com", raw)
    (message,) = sink.messages()
    assert decoded(message.get_body(("plain",))) == "".join(SEGMENTS)
    assert sink.received[0][2].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_dkim_signed_digest_bytes_verify_and_cover_list_unsubscribe(tmp_path, rsa_key):
    key, record = rsa_key
    config = mail_config(
        tmp_path,
        DKIM_DOMAIN="digest.example.org",
        DKIM_SELECTOR="mail2026",
        DKIM_PRIVATE_KEY_PATH=str(key),
        LIST_UNSUBSCRIBE_MAILTO="unsubscribe@digest.example.org",
    )
    signed = mime_message(config)
    assert signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    header = message_from_bytes(signed, policy=policy.default)["DKIM-Signature"]
    tags = dict(part.split("=", 1) for part in re.sub(r"\s", "", header).split(";") if part)
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(
        tags["h"].lower().split(":")
    )
    tampered = signed.replace(b"subject=unsubscribe", b"subject=subscribe")
    assert tampered != signed and not dkim.verify(tampered, dnsfunc=dns_for(record))


@pytest.mark.parametrize(
    ("where", "reply", "outcome"),
    [
        ("rcpt", "451 4.7.1 Greylisted, try again", TemporaryFailure),
        ("data", "452 4.3.1 Insufficient storage", TemporaryFailure),
        ("rcpt", "550 5.1.1 No such user", PermanentFailure),
    ],
)
def test_deliver_raises_a_recipients_reply_at_once_and_keeps_the_session(
    tmp_path, where, reply, outcome
):
    sink = SmtpSink()
    target = "reader@example.com"
    (sink.rcpt_replies if where == "rcpt" else sink.data_replies)[target].append(reply)
    with run_smtp(sink) as port:
        config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        raw = mime_message(config)
        with Mailer(config) as mailer:
            with pytest.raises(outcome) as caught:
                mailer.deliver("digest@digest.example.org", target, raw)
            assert caught.value.reply == reply and not getattr(caught.value, "connection", False)
            mailer.deliver("digest@digest.example.org", "other@example.com", raw)
    assert sink.rcpt_attempts[target] == 1  # no retry inline: the caller defers the row
    assert sink.connections == 1
    assert [rcpt for _, rcpt, _ in sink.received] == [["other@example.com"]]


def test_deliver_reconnects_with_bounded_backoff_then_reports_the_connection(tmp_path):
    config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_RETRIES=2)
    started = time.monotonic()
    with Mailer(config) as mailer, pytest.raises(TemporaryFailure) as caught:
        mailer.deliver("digest@digest.example.org", "r@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert caught.value.connection
    assert 0.03 <= time.monotonic() - started < 5  # 0.01 s then 0.02 s between three tries


class PipeliningSink(SmtpSink):
    """The same sink, offering PIPELINING (RFC 2920) as Postfix and most relays do."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.mark.parametrize("pipelining", [False, True])
def test_deliver_sorts_every_reply_and_dot_stuffs_with_or_without_pipelining(tmp_path, pipelining):
    sink = PipeliningSink() if pipelining else SmtpSink()
    sink.rcpt_replies["later@example.com"].append("451 4.7.1 Greylisted, try again")
    sink.rcpt_replies["gone@example.com"].append("550 5.1.1 No such user")
    sink.data_replies["spam@example.com"].append("554 5.7.1 Message rejected as spam")
    # Lines that start with a dot, first line included: each must arrive as sent.
    raw = b".first\r\nSubject: dots\r\n\r\n.\r\n..two\r\n. three\r\nend."
    with run_smtp(sink) as port:
        config = mail_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        with Mailer(config) as mailer:
            mailer.deliver("digest@digest.example.org", "first@example.com", raw)
            assert mailer.smtp.has_extn("pipelining") is pipelining
            writes = []
            send = mailer.smtp.send
            mailer.smtp.send = lambda data: (writes.append(data), send(data))[1]
            outcomes = {}
            for to in ("later", "gone", "spam", "last"):
                writes.clear()
                try:
                    mailer.deliver("digest@digest.example.org", f"{to}@example.com", raw)
                    outcomes[to] = "sent"
                except (TemporaryFailure, PermanentFailure) as failure:
                    outcomes[to] = (
                        type(failure).__name__,
                        failure.code,
                        failure.connection if isinstance(failure, TemporaryFailure) else None,
                    )
            # The last message: with PIPELINING the envelope in one write, then the body;
            # without, MAIL, RCPT, DATA and the body.
            assert len(writes) == (2 if pipelining else 4)
    assert outcomes == {
        "later": ("TemporaryFailure", 451, False),
        "gone": ("PermanentFailure", 550, None),
        "spam": ("PermanentFailure", 554, None),
        "last": "sent",
    }
    assert sink.connections == 1
    assert [rcpt for _, rcpt, _ in sink.received] == [["first@example.com"], ["last@example.com"]]
    for _, _, content in sink.received:
        assert content == raw + b"\r\n"
