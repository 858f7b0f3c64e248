"""Building MIME messages and handing them to SMTP, or to the dev outbox.

`build_message` is pure. `Mailer` owns one SMTP connection for a batch (or
writes .eml files to OUTBOX_DIR when SMTP_HOST is unset).
"""

import logging
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from newsletter.db import utcnow

log = logging.getLogger(__name__)


def new_message_id(sender: str) -> str:
    """A Message-ID on the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return make_msgid(domain=domain)


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML), UTF-8."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    # quoted-printable keeps Chinese text intact and long lines under 998 octets.
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


class Mailer:
    """One SMTP session for a batch of messages (or the dev outbox)."""

    def __init__(self, config: dict):
        self.config = config
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context()
        if c["SMTP_SECURITY"] == "ssl":
            smtp = smtplib.SMTP_SSL(c["SMTP_HOST"], c["SMTP_PORT"], timeout=c["SMTP_TIMEOUT"], context=context)
        else:
            smtp = smtplib.SMTP(c["SMTP_HOST"], c["SMTP_PORT"], timeout=c["SMTP_TIMEOUT"])
            if c["SMTP_SECURITY"] == "starttls":
                smtp.starttls(context=context)
        if c["SMTP_USERNAME"]:
            smtp.login(c["SMTP_USERNAME"], c["SMTP_PASSWORD"] or "")
        return smtp

    def send(self, message: EmailMessage) -> None:
        """Send one message; SMTP errors propagate to the caller."""
        if not self.config["SMTP_HOST"]:
            write_to_outbox(Path(self.config["OUTBOX_DIR"]), message)
            return
        if self.smtp is None:
            self.smtp = self._connect()
        self.smtp.send_message(message)

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except smtplib.SMTPException | OSError:
                pass
            self.smtp = None


def write_to_outbox(outbox: Path, message: EmailMessage) -> Path:
    """Store `message` as an .eml file named by time and Message-ID."""
    outbox.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9.-]", "_", message["Message-ID"].strip("<>"))[:80]
    path = outbox / f"{time.time_ns()}-{stem}.eml"
    path.write_bytes(message.as_bytes())
    log.info("mail to %s written to %s", message["To"], path)
    return path
