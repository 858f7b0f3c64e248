"""Building MIME messages and handing them to SMTP, or to the dev outbox.

Run by jobs and CLI commands that send mail. `build_message` and
`build_digest_message` are pure (account emails; digests are serialized by
worker/delivery/mime.py and go through `Mailer.deliver`). `Mailer` owns one SMTP connection for a batch
(or writes .eml files to OUTBOX_DIR when SMTP_HOST is unset): it signs with
DKIM when configured, throttles, retries 4xx replies and lost connections with
backoff (a tenacity policy), and sorts what is left into three failures a
caller can act on:
`PermanentFailure` (5xx for this message: a hard bounce), `TemporaryFailure`
(still 4xx or unreachable after the retries) and `SetupFailure` (our side is
misconfigured: AUTH, STARTTLS or sender refused; no message can go).
"""

import binascii
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

import dkim
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from newsletter.db import utcnow

log = logging.getLogger(__name__)

# Headers set with `set_raw` (the List-Unsubscribe URLs) are written as given:
# the default refolding would turn a long URL into RFC 2047 encoded-words,
# which no mail client reads as a URL. Every other header folds as usual.
MESSAGE_POLICY = SMTP_POLICY.clone(refold_source="none")

# What the DKIM signature covers (RFC 8058 §4 asks for both List-Unsubscribe headers).
DKIM_SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"auto-submitted",
    b"mime-version",
    b"content-type",
)

CRLF = b"\r\n"

# Characters that may not appear inside a <URI> of List-Unsubscribe.
_UNSAFE_IN_URI = re.compile(r"[\s<>,\"]")


def new_message_id(sender: str) -> str:
    """A Message-ID on the sender's domain."""
    return make_msgid(domain=sender_domain(sender))


def sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML), UTF-8."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = sender
    message["To"] = to
    # Non-ASCII subjects become RFC 2047 encoded-words here.
    message["Subject"] = subject
    message["Date"] = format_datetime(date or utcnow())
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = "multipart/alternative"
    message.attach(_text_part(text, "plain"))
    message.attach(_text_part(html, "html"))
    return message


def _text_part(body: str, subtype: str) -> EmailMessage:
    """A UTF-8 quoted-printable part: Chinese text intact, every line under 78 octets."""
    part = EmailMessage(policy=MESSAGE_POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    # binascii's C encoder: the email package's pure-Python one (set_content)
    # costs ~5 ms per 100 KB digest, most of a message's CPU time.
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


def list_unsubscribe_value(one_click_url: str, mailto: str | None) -> str:
    """The List-Unsubscribe value: the one-click URL first, then a mailto if any."""
    uris = [one_click_url]
    if mailto:
        address = mailto.removeprefix("mailto:")
        if "?" not in address:
            address += "?subject=unsubscribe"
        uris.append(f"mailto:{address}")
    for uri in uris:
        if not uri or _UNSAFE_IN_URI.search(uri):
            raise ValueError(f"unsafe URI for List-Unsubscribe: {uri!r}")
    # One URI per line, folded by hand (see MESSAGE_POLICY).
    return ",\r\n ".join(f"<{uri}>" for uri in uris)


def build_digest_message(
    config: dict,
    *,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    one_click_url: str,
    date: datetime | None = None,
) -> EmailMessage:
    """A digest email with the bulk-mail headers of RFC 2369, 2919, 3834 and 8058."""
    sender = config["MAIL_FROM"]
    list_name = parseaddr(sender)[0] or "arXiv digest"
    message = build_message(
        sender=sender,
        to=to,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id,
        date=date,
        headers={
            "List-Id": f"{list_name} <digest.{sender_domain(sender)}>",
            "Auto-Submitted": "auto-generated",
            "Precedence": "bulk",
        },
    )
    message.set_raw(
        "List-Unsubscribe",
        list_unsubscribe_value(one_click_url, config.get("LIST_UNSUBSCRIBE_MAILTO")),
    )
    message.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return message


def sign_message(raw: bytes, *, domain: str, selector: str, private_key: bytes) -> bytes:
    """`raw` with a DKIM-Signature header prepended (relaxed/relaxed, rsa-sha256)."""
    signature = dkim.sign(
        raw,
        selector.encode("ascii"),
        domain.encode("ascii"),
        private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(DKIM_SIGNED_HEADERS),
    )
    return signature + raw


class DeliveryFailure(smtplib.SMTPException):
    """A message could not be handed over; `reply` says why."""

    def __init__(self, reply: str, code: int | None = None):
        super().__init__(reply)
        self.reply = reply
        self.code = code


class PermanentFailure(DeliveryFailure):
    """A 5xx reply to RCPT or DATA: this recipient or message is refused (a hard bounce)."""


class TemporaryFailure(DeliveryFailure):
    """Still a 4xx reply or no connection after every retry; try again later.

    `connection` is True when the server could not be reached or hung up,
    i.e. the next message would most likely fail too.
    """

    def __init__(self, reply: str, code: int | None = None, *, connection: bool = False):
        super().__init__(reply, code)
        self.connection = connection


class SetupFailure(DeliveryFailure):
    """Our side is refused (AUTH, STARTTLS, HELO, MAIL FROM): no message can go."""


def _reply_text(code: int, message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


class Mailer:
    """One SMTP session for a batch of messages (or the dev outbox)."""

    def __init__(self, config: dict):
        self.config = config
        self.smtp: smtplib.SMTP | None = None
        self._next_send_at = 0.0
        self._dkim_key: bytes | None = None
        if config.get("DKIM_PRIVATE_KEY_PATH"):
            if not (config.get("DKIM_DOMAIN") and config.get("DKIM_SELECTOR")):
                raise SetupFailure("DKIM_PRIVATE_KEY_PATH needs DKIM_DOMAIN and DKIM_SELECTOR")
            self._dkim_key = Path(config["DKIM_PRIVATE_KEY_PATH"]).read_bytes()

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context()
        if c["SMTP_SECURITY"] == "ssl":
            smtp = smtplib.SMTP_SSL(
                c["SMTP_HOST"], c["SMTP_PORT"], timeout=c["SMTP_TIMEOUT"], context=context
            )
        else:
            smtp = smtplib.SMTP(c["SMTP_HOST"], c["SMTP_PORT"], timeout=c["SMTP_TIMEOUT"])
        try:
            if c["SMTP_SECURITY"] == "starttls":
                smtp.starttls(context=context)
            if c["SMTP_USERNAME"]:
                smtp.login(c["SMTP_USERNAME"], c["SMTP_PASSWORD"] or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def serialize(self, message: EmailMessage) -> bytes:
        """The bytes that go on the wire: the message, DKIM-signed when configured."""
        raw = message.as_bytes()
        if self._dkim_key is None:
            return raw
        return sign_message(
            raw,
            domain=self.config["DKIM_DOMAIN"],
            selector=self.config["DKIM_SELECTOR"],
            private_key=self._dkim_key,
        )

    def send(self, message: EmailMessage) -> None:
        """Send one message, retrying transient faults; raise a DeliveryFailure subclass."""
        raw = self.serialize(message)
        if not self.config["SMTP_HOST"]:
            write_to_outbox(Path(self.config["OUTBOX_DIR"]), message, raw)
            return
        sender = parseaddr(message["From"])[1]
        recipient = parseaddr(message["To"])[1]
        # Account emails are few: a 4xx is worth a retry here, a lost connection too.
        self._with_retries(
            lambda smtp: smtp.sendmail(sender, [recipient], raw),
            retry=lambda failure: isinstance(failure, TemporaryFailure),
            label=message["Message-ID"],
        )

    def deliver(self, sender: str, recipient: str, raw: bytes, label: str = "") -> None:
        """Send ready-made bytes to one recipient; raise a DeliveryFailure subclass.

        The batch sender's path (worker/delivery/sending.py): a 4xx or 5xx for this
        recipient is raised at once (the caller defers or fails the row and
        goes on); only a lost or refused connection is retried, on a fresh
        connection with bounded backoff (SMTP_RETRIES, SMTP_RETRY_DELAY).
        """
        if not self.config["SMTP_HOST"]:
            write_raw_to_outbox(Path(self.config["OUTBOX_DIR"]), raw, label or recipient)
            return
        self._with_retries(
            lambda smtp: transmit(smtp, sender, recipient, raw),
            retry=lambda failure: isinstance(failure, TemporaryFailure) and failure.connection,
            label=label or recipient,
        )

    def _with_retries(
        self,
        send_once: Callable[[smtplib.SMTP], object],
        retry: Callable[[DeliveryFailure], bool],
        label: str,
    ) -> None:
        """Run `send_once` on a live connection; retry the failures `retry` accepts.

        Each retry starts on a fresh connection after a doubling wait
        (SMTP_RETRIES, SMTP_RETRY_DELAY). After a refused recipient or message
        smtplib has sent RSET, so the session goes on; after a lost connection
        or a setup failure it is dropped.
        """
        retries = self.config.get("SMTP_RETRIES", 3)

        def before_retry(state: RetryCallState) -> None:
            assert state.outcome is not None
            failure = state.outcome.exception()
            assert isinstance(failure, DeliveryFailure)
            self._drop_connection()
            log.warning(
                "temporary SMTP failure for %s (try %d of %d, again in %.2f s): %s",
                label,
                state.attempt_number,
                retries + 1,
                state.upcoming_sleep,
                failure.reply,
            )

        Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryFailure) and retry(e)),
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential(multiplier=self.config.get("SMTP_RETRY_DELAY", 1.0)),
            before_sleep=before_retry,
            reraise=True,  # the last DeliveryFailure, as callers expect
        )(self._send_once, send_once)

    def _send_once(self, send_once: Callable[[smtplib.SMTP], object]) -> None:
        """One try on a live connection; a DeliveryFailure (classified) if it fails."""
        try:
            self._throttle()
            if self.smtp is None:
                self.smtp = self._connect()
            send_once(self.smtp)
        except smtplib.SMTPException as error:
            failure = classify(error)
            cause: Exception = error
        except OSError as error:
            failure = TemporaryFailure(f"connection error: {error}", connection=True)
            cause = error
        else:
            return
        connection_lost = isinstance(failure, TemporaryFailure) and failure.connection
        if connection_lost or isinstance(failure, SetupFailure):
            self._drop_connection()
        raise failure from cause

    def _throttle(self) -> None:
        rate = self.config.get("SMTP_MAX_PER_SECOND") or 0
        if rate <= 0:
            return
        now = time.monotonic()
        if self._next_send_at > now:
            time.sleep(self._next_send_at - now)
        self._next_send_at = max(now, self._next_send_at) + 1.0 / rate

    def _drop_connection(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            except OSError:
                pass
            self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop_connection()


def transmit(smtp: smtplib.SMTP, sender: str, recipient: str, raw: bytes) -> None:
    """`smtp.sendmail(sender, [recipient], raw)` for ready CRLF bytes, at less cost per message.

    Raises what sendmail raises, in the same cases (so `classify` sorts it),
    and leaves the session as sendmail does (RSET after a refusal, closed
    after a 421). Two differences, both for the batch sender's ~140 KB
    digests: the dot-stuffing is one bytes.replace (smtplib runs a multiline
    regex over the whole message), and when the server offers PIPELINING
    (RFC 2920) MAIL, RCPT and DATA go out in one write and their three
    replies are read after it: two round trips per message instead of four.
    """
    smtp.ehlo_or_helo_if_needed()
    if not (smtp.does_esmtp and smtp.has_extn("pipelining")):
        _envelope(smtp, sender, recipient, len(raw))
    else:
        size = f" SIZE={len(raw)}" if smtp.has_extn("size") else ""
        if "\r" in sender + recipient or "\n" in sender + recipient:
            raise ValueError("a line break in an SMTP address")
        mail_from = f"MAIL FROM:{smtplib.quoteaddr(sender)}{size}\r\n"
        smtp.send(f"{mail_from}RCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n")
        mail, rcpt, data = smtp.getreply(), smtp.getreply(), smtp.getreply()
        if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # A server that took DATA with no recipient: end the empty message.
            smtp.send(b".\r\n")
            smtp.getreply()
        _refused(smtp, mail, rcpt, data, sender, recipient)
    # Dot-stuffing (RFC 5321 4.5.2), then the end-of-data line.
    body = raw.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    smtp.send(body + (b".\r\n" if body.endswith(CRLF) else b"\r\n.\r\n"))
    code, reply = smtp.getreply()
    if code != 250:
        _close_or_reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _envelope(smtp: smtplib.SMTP, sender: str, recipient: str, size: int) -> None:
    """MAIL, RCPT and DATA one round trip each, for a server without PIPELINING."""
    options = [f"size={size}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    mail = smtp.mail(sender, options)
    if mail[0] != 250:
        _refused(smtp, mail, (250, b""), (354, b""), sender, recipient)
    rcpt = smtp.rcpt(recipient)
    if rcpt[0] not in (250, 251):
        _refused(smtp, mail, rcpt, (354, b""), sender, recipient)
    smtp.putcmd("data")
    _refused(smtp, mail, rcpt, smtp.getreply(), sender, recipient)


def _refused(smtp: smtplib.SMTP, mail, rcpt, data, sender: str, recipient: str) -> None:
    """Raise sendmail's exception for the first refused step of the envelope, if any."""
    if mail[0] != 250:
        _close_or_reset(smtp, mail[0])
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt[0] not in (250, 251):
        _close_or_reset(smtp, rcpt[0])
        raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if data[0] != 354:
        _close_or_reset(smtp, data[0])
        raise smtplib.SMTPDataError(data[0], data[1])


def _close_or_reset(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:
        smtp.close()
    else:
        try:
            smtp.rset()
        except smtplib.SMTPServerDisconnected:
            pass


def classify(error: smtplib.SMTPException) -> DeliveryFailure:
    """Sort an smtplib error into permanent (bounce), temporary or setup failure."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so there is exactly one entry.
        code, reply = next(iter(error.recipients.values()))
        text = _reply_text(code, reply)
        return PermanentFailure(text, code) if code >= 500 else TemporaryFailure(text, code)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"connection lost: {error}", connection=True)
    if isinstance(error, smtplib.SMTPResponseException):
        text = _reply_text(error.smtp_code, error.smtp_error)
        if 400 <= error.smtp_code < 500:
            # 421 means the server is closing the connection.
            return TemporaryFailure(text, error.smtp_code, connection=error.smtp_code == 421)
        if isinstance(error, smtplib.SMTPDataError):
            return PermanentFailure(text, error.smtp_code)
        return SetupFailure(text, error.smtp_code)
    # SMTPNotSupportedError (no STARTTLS/AUTH offered) and the like.
    return SetupFailure(str(error) or type(error).__name__)


def write_to_outbox(outbox: Path, message: EmailMessage, raw: bytes | None = None) -> Path:
    """Store `message` (or its signed bytes `raw`) as an .eml file named by time and Message-ID."""
    outbox.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9.-]", "_", message["Message-ID"].strip("<>"))[:80]
    path = outbox / f"{time.time_ns()}-{stem}.eml"
    path.write_bytes(raw if raw is not None else message.as_bytes())
    log.info("mail to %s written to %s", message["To"], path)
    return path


def write_raw_to_outbox(outbox: Path, raw: bytes, label: str) -> Path:
    """Store ready-made message bytes as an .eml file named by time and `label`."""
    outbox.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9.-]", "_", label.strip("<>"))[:80]
    path = outbox / f"{time.time_ns()}-{stem}.eml"
    path.write_bytes(raw)
    log.info("mail %s written to %s", label, path)
    return path
