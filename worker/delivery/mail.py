"""Handing messages to SMTP, or to the dev outbox.

Run by jobs and CLI commands that send mail. Messages are built by
worker/delivery/messages.py (account emails) and worker/delivery/mime.py
(digests, through `Mailer.deliver`). `Mailer` owns one SMTP connection for a batch
(or writes .eml files to OUTBOX_DIR when SMTP_HOST is unset): it signs with
DKIM when configured, throttles, retries 4xx replies and lost connections with
backoff (a tenacity policy), and leaves what is left as one of the three
failures of worker/delivery/smtp.py, which also runs each SMTP transaction.
"""

import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import parseaddr
from functools import cache
from pathlib import Path

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from newsletter.config import Settings
from worker.delivery.messages import sign_message
from worker.delivery.smtp import (
    DeliveryFailure,
    SetupFailure,
    TemporaryFailure,
    classify,
    transmit,
)

log = logging.getLogger(__name__)


@cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context of every SMTP connection this process opens.

    Made once: loading the system's CA certificates costs ~45 ms of CPU, paid
    before on every connection, for every batch and every retried connection,
    even with SMTP_SECURITY "none", which uses no TLS. A context is safe to
    share between threads; a changed CA store is read at the next start.
    """
    return ssl.create_default_context()


class Mailer:
    """One SMTP session for a batch of messages (or the dev outbox)."""

    def __init__(self, config: Settings):
        self.config = config
        self.smtp: smtplib.SMTP | None = None
        self._next_send_at = 0.0
        self._dkim_key: bytes | None = None
        if config.DKIM_PRIVATE_KEY_PATH:
            if not (config.DKIM_DOMAIN and config.DKIM_SELECTOR):
                raise SetupFailure("DKIM_PRIVATE_KEY_PATH needs DKIM_DOMAIN and DKIM_SELECTOR")
            self._dkim_key = Path(config.DKIM_PRIVATE_KEY_PATH).read_bytes()

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        assert c.SMTP_HOST is not None  # without SMTP_HOST messages go to the outbox
        smtp: smtplib.SMTP
        if c.SMTP_SECURITY == "ssl":
            smtp = smtplib.SMTP_SSL(
                c.SMTP_HOST, c.SMTP_PORT, timeout=c.SMTP_TIMEOUT, context=tls_context()
            )
        else:
            smtp = smtplib.SMTP(c.SMTP_HOST, c.SMTP_PORT, timeout=c.SMTP_TIMEOUT)
        try:
            if c.SMTP_SECURITY == "starttls":
                smtp.starttls(context=tls_context())
            if c.SMTP_USERNAME:
                smtp.login(c.SMTP_USERNAME, c.SMTP_PASSWORD or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def serialize(self, message: EmailMessage) -> bytes:
        """The bytes that go on the wire: the message, DKIM-signed when configured."""
        raw = message.as_bytes()
        domain, selector = self.config.DKIM_DOMAIN, self.config.DKIM_SELECTOR
        if self._dkim_key is None or domain is None or selector is None:
            return raw  # with a key, __init__ made sure of the domain and selector
        return sign_message(
            raw,
            domain=domain,
            selector=selector,
            private_key=self._dkim_key,
        )

    def send(self, message: EmailMessage) -> None:
        """Send one message, retrying transient faults; raise a DeliveryFailure subclass."""
        raw = self.serialize(message)
        if not self.config.SMTP_HOST:
            write_to_outbox(Path(self.config.OUTBOX_DIR), message, raw)
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
        if not self.config.SMTP_HOST:
            write_raw_to_outbox(Path(self.config.OUTBOX_DIR), raw, label or recipient)
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
        retries = self.config.SMTP_RETRIES

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
            wait=wait_exponential(multiplier=self.config.SMTP_RETRY_DELAY),
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
        rate = self.config.SMTP_MAX_PER_SECOND or 0
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
