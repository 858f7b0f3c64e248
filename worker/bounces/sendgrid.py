"""SendGrid's Event Webhook (pure): its signature, and its events as reports.

Called by the web's webhook view (newsletter/bounce_webhooks.py), which queues
the reports for `worker.jobs.apply_bounce_reports`. SendGrid signs each POST
with ECDSA P-256 over SHA-256 of the X-Twilio-Email-Event-Webhook-Timestamp
header's value followed by the raw body; the public key is shown base64 (DER)
in SendGrid's settings and set here as SENDGRID_WEBHOOK_PUBLIC_KEY.

The body is a JSON array of events. Read: `bounce` (type `bounce`: hard;
`blocked`: soft), `deferred` (soft), `spamreport` (a complaint); the rest
(delivered, open, click, dropped...) says nothing about the address. Items
without an `event` are SendGrid's older bounce records ({email, status,
reason}), read by their status class.
"""

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from worker.bounces.parse import Kind, Report, normal_message_id

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

EVENT_KINDS = {"deferred": Kind.SOFT, "spamreport": Kind.COMPLAINT}


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER text; ValueError if it is not a P-256 key."""
    try:
        key = load_der_public_key(base64.b64decode(value.strip(), validate=True))
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not a base64 DER public key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_signature(
    key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes
) -> bool:
    """True if `signature` (base64 DER) signs timestamp + body under `key`."""
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def parse_events(body: bytes) -> list[Report]:
    """The reports in a webhook body (events that say nothing are left out); ValueError if malformed."""
    try:
        events = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("not a JSON array of event objects")
    reports = [_event_report(event) for event in events]
    return [report for report in reports if report.kind is not Kind.NONE]


def _event_report(event: dict) -> Report:
    email = event.get("email")
    if not isinstance(email, str) or "@" not in email:
        return Report(Kind.NONE)
    name = event.get("event")
    status = str(event.get("status") or "")
    if name is None:  # an older bounce record: its status decides
        kind = {"5": Kind.HARD, "4": Kind.SOFT}.get(status[:1], Kind.NONE)
    elif name == "bounce":
        kind = Kind.SOFT if event.get("type") == "blocked" else Kind.HARD
    else:
        kind = EVENT_KINDS.get(str(name), Kind.NONE)
    message_id = event.get("smtp-id")
    return Report(
        kind,
        (email.strip(),),
        normal_message_id(message_id) if isinstance(message_id, str) else None,
        status or (str(name) if name else None),
        detail=" ".join(str(event.get("reason") or name or "").split()),
    )
