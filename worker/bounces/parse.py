"""One report message in, what it says out (pure): hard or soft bounce, complaint, or nothing.

Called by worker/bounces/mailbox.py's callers (the `poll_bounces` job, `newsletter
bounces poll`) for each message in the bounce mailbox. Reads:

- RFC 5965 ARF complaints (multipart/report; report-type=feedback-report):
  Feedback-Type abuse, fraud, virus, opt-out, other... is a complaint;
  auth-failure and not-spam are not a reader's complaint.
- RFC 3464 DSNs (a message/delivery-status part): per recipient, Action and
  Status; Status 5.x.x is a hard bounce, 4.x.x (or Action: delayed) a soft one.
- Free-text bounces that name the failed address in X-Failed-Recipients (Exim,
  Gmail): a hard bounce, since those servers add it only when they give up.

A message from a mailer daemon or postmaster that is none of these (free text
without X-Failed-Recipients, a report without its status part) is UNKNOWN: left
for a person to read. Anything else, including RFC 3834 automatic replies
(vacation, out of office), is NONE and counts for nothing.
"""

import enum
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any


class Kind(enum.Enum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    # A bounce we could not read: kept for a person, counted for nothing.
    UNKNOWN = "unknown"
    # Not a report at all (an automatic reply, ordinary mail, a success notice).
    NONE = "none"


@dataclass(frozen=True)
class Report:
    """What one report says about one message we sent."""

    kind: Kind
    # The addresses the message was sent to that this report is about, as we wrote them.
    recipients: tuple[str, ...] = ()
    # The original message's Message-ID, "<...>", when the report carries it.
    message_id: str | None = None
    # The DSN status ("5.1.1"), or the ARF feedback type ("abuse").
    status: str | None = None
    detail: str = field(default="", compare=False)


# Feedback types (RFC 5965, RFC 6650's registry) that are not a reader's complaint.
NOT_COMPLAINTS = frozenset({"auth-failure", "not-spam"})
# Senders of bounces; anything else that is not a report is mail (or an auto-reply).
DAEMONS = frozenset({"mailer-daemon", "postmaster", "mail-daemon"})
HEADER_PARTS = frozenset({"text/rfc822-headers", "text/rfc822-header"})
STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")
BODY_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def parse_report(raw: bytes) -> Report:
    """Classify one report message and name the recipient and Message-ID it is about."""
    message = message_from_bytes(raw, policy=policy.compat32)
    parts = list(message.walk())
    types = {part.get_content_type() for part in parts}
    if "message/feedback-report" in types:
        return _parse_arf(parts)
    if "message/delivery-status" in types:
        return _parse_dsn(parts)
    failed = message.get("X-Failed-Recipients")
    if failed:
        recipients = tuple(address for _, address in getaddresses([str(failed)]) if address)
        return Report(
            Kind.HARD, recipients, _body_message_id(message), detail="X-Failed-Recipients"
        )
    if _from_daemon(message) or message.get_content_type() == "multipart/report":
        return Report(Kind.UNKNOWN, detail=f"unreadable bounce: {message.get('Subject', '')}")
    return Report(Kind.NONE, detail=f"not a report: {message.get('Subject', '')}")


def _parse_arf(parts: list[Message]) -> Report:
    fields = _first_block(
        next(p for p in parts if p.get_content_type() == "message/feedback-report")
    )
    feedback_type = fields.get("feedback-type", "").strip().lower() or "abuse"
    original = _original_headers(parts)
    recipient = fields.get("original-rcpt-to") or fields.get("removal-recipient")
    if not recipient and original is not None:
        # Our digests go to one address each, so the attached To names the reader.
        addresses = [a for _, a in getaddresses(original.get_all("To", [])) if "@" in a]
        recipient = addresses[0] if len(addresses) == 1 else None
    kind = Kind.NONE if feedback_type in NOT_COMPLAINTS else Kind.COMPLAINT
    return Report(
        kind,
        (_address(recipient),) if recipient and _address(recipient) else (),
        normal_message_id(original.get("Message-ID") if original is not None else None),
        feedback_type,
        detail=f"feedback report ({feedback_type})",
    )


def _parse_dsn(parts: list[Message]) -> Report:
    status_part = next(p for p in parts if p.get_content_type() == "message/delivery-status")
    by_kind: dict[Kind, list[tuple[str, str, str]]] = {Kind.HARD: [], Kind.SOFT: []}
    for block in _blocks(status_part)[1:]:  # the first holds the per-message fields
        recipient = _address(block.get("original-recipient") or block.get("final-recipient"))
        kind, status = _recipient_kind(block.get("action", ""), block.get("status", ""))
        if recipient and kind is not None:
            by_kind[kind].append((recipient, status, block.get("diagnostic-code", "")))
    original = _original_headers(parts)
    message_id = normal_message_id(original.get("Message-ID") if original is not None else None)
    for kind in (Kind.HARD, Kind.SOFT):
        if by_kind[kind]:
            found = by_kind[kind]
            detail = " ".join(found[0][2].split())
            return Report(kind, tuple(r for r, _, _ in found), message_id, found[0][1], detail)
    return Report(Kind.NONE, (), message_id, detail="delivery status without a failure")


def _recipient_kind(action: str, status: str) -> tuple[Kind | None, str]:
    """A recipient's outcome from its Action and Status (None: delivered, relayed...)."""
    action = action.strip().lower()
    match = STATUS.search(status)
    code = match.group(0) if match else ""
    if action not in ("failed", "delayed", ""):
        return None, code
    if action == "delayed" or code.startswith("4"):
        return Kind.SOFT, code
    if code.startswith("5") or action == "failed":
        # A failure without a readable status is permanent by its Action.
        return Kind.HARD, code
    return None, code


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status (or feedback-report) part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    # Some parsers leave it text: blocks are separated by blank lines.
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\s*\r?\n", text)]


def _first_block(part: Message) -> Message:
    blocks = _blocks(part)
    return blocks[0] if blocks else Message()


def _original_headers(parts: list[Message]) -> Message | None:
    """The headers of the message the report is about (attached whole, or its headers)."""
    for part in parts:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            attached = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(attached, Message) and len(attached.keys()):
                return attached
        elif kind in HEADER_PARTS:
            body = part.get_payload(decode=True)
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
            return HeaderParser().parsestr(text)
    return None


def _body_message_id(message: Message) -> str | None:
    """The returned message's Message-ID in a free-text bounce's copy of it."""
    body = message.get_payload(decode=True)
    if not isinstance(body, bytes):
        return None
    found = BODY_MESSAGE_ID.search(body.decode("utf-8", "replace"))
    return normal_message_id(found.group(1)) if found else None


def _from_daemon(message: Message) -> bool:
    address = parseaddr(str(message.get("From", "")))[1]
    return address.partition("@")[0].lower() in DAEMONS


def _address(value: str | None) -> str:
    """The address of a DSN/ARF recipient field: "rfc822; a@b" or "<a@b>" -> "a@b"."""
    if not value:
        return ""
    kind, sep, rest = str(value).partition(";")
    text = rest if sep and kind.strip().lower() in ("rfc822", "utf-8") else str(value)
    address = parseaddr(text.strip())[1] or text.strip()
    return address if "@" in address else ""


def normal_message_id(value: str | None) -> str | None:
    """A Message-ID in its usual "<...>" form, however the report wrote it."""
    text = "".join(str(value or "").split()).strip("<>")
    return f"<{text}>" if text else None


def report_to_dict(report: Report) -> dict[str, Any]:
    """A report as plain values, for a job's arguments."""
    return {
        "kind": report.kind.value,
        "recipients": list(report.recipients),
        "message_id": report.message_id,
        "status": report.status,
        "detail": report.detail,
    }


def report_from_dict(values: dict[str, Any]) -> Report:
    """The report `report_to_dict` gave."""
    return Report(
        Kind(values["kind"]),
        tuple(values.get("recipients") or ()),
        values.get("message_id"),
        values.get("status"),
        values.get("detail") or "",
    )
