"""Account emails and digest headers as MIME messages, and their DKIM signature (pure).

Used by worker/jobs.py (account emails: `build_message`), worker/delivery/mime.py
(the digests' List-Unsubscribe value, sender domain and signature) and
dispatch (`new_message_id`). Sending them is worker/delivery/mail.py's.
"""

import binascii
import re
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr

import dkim

from newsletter.config import Settings
from newsletter.db import utcnow

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
    config: Settings,
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
    sender = config.MAIL_FROM
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
        list_unsubscribe_value(one_click_url, config.LIST_UNSUBSCRIBE_MAILTO),
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
