"""Digest messages as wire bytes, built from a fixed header template and pre-encoded parts.

Called by worker/delivery/sending.py for every digest (account emails keep the
email-package builder in worker/delivery/messages.py). The email package costs several
milliseconds per 100 KB digest; here a message is a handful of header lines
and the quoted-printable encodings of its body segments joined together.

A rendered digest's text and HTML come as segments (`text_segments`,
`html_segments`): the big per-paper fragments are the same strings in
every digest of the day, so each is encoded once and cached (`encode_segment`,
a bounded LRU). Independently encoded segments are joined with a soft line
break ("=\\r\\n") where a segment does not end a line, so the decoded body is
the rendered text exactly (with CRLF line ends, MIME's canonical form).
Lines end in CRLF, ready for smtplib, which sends bytes as they are.
"""

import binascii
import secrets
import sys
import threading
from base64 import b64encode
from collections import OrderedDict
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

from newsletter.config import Settings
from worker.delivery.messages import list_unsubscribe_value, sender_domain, sign_message

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
# Segments shorter than this (template glue, numbers, links) are kept in a
# count-bounded cache: the shared ones hit, a subscriber's own fall out.
# ~500 bytes each with the key: 10,000 is ~5 MB.
_SMALL_CHARS = 200
_SMALL_ENTRIES = 10_000
# Longer than this is a whole part handed over as one segment: never shared.
_CACHE_MAX_CHARS = 32 * 1024
# Bytes kept for large segments, the segment (the key, which the cache keeps
# alive once the day's fragment caches have let it go) and its encoding both
# counted. A day's plain entries in both languages are ~15 MB of the two; the
# rest holds the most used highlighted entries. Sized with benchmarks/scale.py
# at 100,000 subscribers: 64 MB of encodings alone took a worker to ~110 MB.
CACHE_BYTES = 24 * 1024 * 1024
# Header lines stay within the recommended 78 characters where they can be folded.
_LINE = 78


class SegmentCache:
    """Segment -> its quoted-printable bytes: small ones by count, large ones by bytes (LRU)."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._small = lru_cache(maxsize=_SMALL_ENTRIES)(encode_qp)
        self._lock = threading.Lock()

    def encode(self, segment: str) -> bytes:
        if len(segment) < _SMALL_CHARS:
            return self._small(segment)
        with self._lock:  # drains in threads of one process share the cache
            encoded = self._entries.get(segment)
            if encoded is not None:
                self._entries.move_to_end(segment)
                return encoded
        encoded = encode_qp(segment)
        if len(segment) > _CACHE_MAX_CHARS:
            return encoded
        with self._lock:
            if segment not in self._entries:
                self._entries[segment] = encoded
                self.size += _cost(segment, encoded)
            while self.size > self.max_bytes and self._entries:
                kept, dropped = self._entries.popitem(last=False)
                self.size -= _cost(kept, dropped)
        return encoded


def _cost(segment: str, encoded: bytes) -> int:
    """Bytes a cache entry holds: the segment (1, 2 or 4 bytes a character) and its encoding."""
    return sys.getsizeof(segment) + len(encoded)


def encode_qp(segment: str) -> bytes:
    """`segment` as UTF-8 quoted-printable with CRLF line ends and lines of at most 76."""
    data = segment.replace("\n", "\r\n").encode("utf-8")
    if data.endswith(CRLF):
        return binascii.b2a_qp(data, istext=True)
    # binascii breaks lines with CRLF only if the data's first line ends in
    # CRLF; a line added (and taken off again) makes sure it does.
    # Its last line is at most 75 characters, so a soft break after it fits in 76.
    return binascii.b2a_qp(data + CRLF, istext=True)[:-2]


def encode_body(segments: tuple[str, ...], cache: SegmentCache) -> bytes:
    """The quoted-printable body of the joined `segments`, each encoded (or found) once."""
    out: list[bytes] = []
    append, encode, small = out.append, cache.encode, cache._small
    # ~230 segments a digest: the loop is kept lean (bound methods, one index).
    for segment in segments:
        if not segment:
            continue
        append(small(segment) if len(segment) < _SMALL_CHARS else encode(segment))
        if segment[-1] != "\n":
            # The next segment continues this line: a soft break decodes to nothing.
            append(SOFT_BREAK)
    body = b"".join(out)
    # The last segment ends the body: no soft break before the boundary.
    if body.endswith(SOFT_BREAK):
        body = body[: -len(SOFT_BREAK)]
    return body


def encode_header_text(name: str, value: str) -> bytes:
    """`Name: value` folded to 78 columns; RFC 2047 (UTF-8, base64) when not ASCII."""
    if value.isascii() and not any(c in value for c in "\r\n"):
        return _fold_words(name, value.split(" "))
    words = []
    chunk = ""
    # Each encoded-word at most 75 characters: =?utf-8?b? + base64 of <= 45 bytes + ?=.
    for char in value.replace("\r", " ").replace("\n", " "):
        if len((chunk + char).encode("utf-8")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    if chunk:
        words.append(chunk)
    encoded = [f"=?utf-8?b?{b64encode(word.encode('utf-8')).decode('ascii')}?=" for word in words]
    return _fold_words(name, encoded)


def _fold_words(name: str, words: list[str]) -> bytes:
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > _LINE and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += " " + word
    return "\r\n".join(lines).encode("ascii") + CRLF


class DigestMime:
    """Serializes digests for one sender: the constant headers are made once.

    With DKIM configured each message's bytes are signed (the signature
    covers List-Unsubscribe and List-Unsubscribe-Post, RFC 8058 §4).
    """

    def __init__(self, config: Settings, cache: SegmentCache | None = None):
        sender = config.MAIL_FROM
        self.sender_address = parseaddr(sender)[1]
        self.mailto = config.LIST_UNSUBSCRIBE_MAILTO
        self.cache = cache or SegmentCache()
        name, address = parseaddr(sender)
        list_name = name or "arXiv digest"
        if not list_name.isascii():
            list_name = Header(list_name, "utf-8").encode()
        # A boundary with "=_" can never occur in quoted-printable text.
        self.boundary = f"=_digest_{secrets.token_hex(12)}"
        # formataddr quotes or RFC 2047-encodes the display name as needed.
        self._from = f"From: {formataddr((name, address), 'utf-8')}\r\n".encode("ascii")
        self._fixed = (
            encode_header_text("List-Id", f"{list_name} <digest.{sender_domain(sender)}>")
            + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            + b"Auto-Submitted: auto-generated\r\n"
            + b"Precedence: bulk\r\n"
            + b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'.encode()
            + b"\r\n"
        )
        part = '\r\n--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
        part += "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        self._text_head = part.format(b=self.boundary, kind="plain").encode()[2:]
        self._html_head = part.format(b=self.boundary, kind="html").encode()
        self._end = f"\r\n--{self.boundary}--\r\n".encode()
        self._dkim: tuple[str, str, bytes] | None = None
        # Mailer refuses a key without its domain and selector (SetupFailure).
        if config.DKIM_PRIVATE_KEY_PATH and config.DKIM_DOMAIN and config.DKIM_SELECTOR:
            with open(config.DKIM_PRIVATE_KEY_PATH, "rb") as key:
                self._dkim = (config.DKIM_DOMAIN, config.DKIM_SELECTOR, key.read())

    def build(
        self,
        *,
        to: str,
        subject: str,
        text_segments: tuple[str, ...],
        html_segments: tuple[str, ...],
        message_id: str,
        one_click_url: str,
        date: datetime,
    ) -> bytes:
        """The message's bytes (signed when DKIM is configured), CRLF throughout."""
        unsubscribe = list_unsubscribe_value(one_click_url, self.mailto)
        if "\r" in to or "\n" in to or "\r" in message_id or "\n" in message_id:
            raise ValueError("a header value with a line break")
        raw = b"".join(
            (
                self._from,
                b"To: " + to.encode("ascii") + CRLF,
                encode_header_text("Subject", subject),
                b"Date: " + format_datetime(date).encode("ascii") + CRLF,
                b"Message-ID: " + message_id.encode("ascii") + CRLF,
                b"List-Unsubscribe: " + unsubscribe.encode("ascii") + CRLF,
                self._fixed,
                self._text_head,
                encode_body(text_segments, self.cache),
                self._html_head,
                encode_body(html_segments, self.cache),
                self._end,
            )
        )
        if self._dkim is None:
            return raw
        domain, selector, key = self._dkim
        return sign_message(raw, domain=domain, selector=selector, private_key=key)
