"""POST /webhooks/sendgrid: SendGrid's signed Event Webhook, whose bounces and complaints are queued.

Registered by `create_app`; off (404) unless SENDGRID_WEBHOOK_PUBLIC_KEY is set.
Like every view here it only checks and queues: the signature and the body are
read by worker/bounces/sendgrid.py (pure), and the reports go by name to
`worker.jobs.apply_bounce_reports`, which matches and applies them. A bad
signature is a 403, a body that is not SendGrid's JSON a 400; refused requests
from one address are limited (SIGNUP_LIMIT_PER_IP an hour, then 429) so a
forger cannot fill the log. Relays post with no cookie, so CSRF is exempt.
"""

import logging
from typing import TYPE_CHECKING

from flask import Blueprint, abort, current_app, request

from newsletter import ratelimit
from newsletter.config import settings
from newsletter.web import csrf
from worker.queue import enqueue

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

log = logging.getLogger(__name__)

bp = Blueprint("bounce_webhooks", __name__)


@bp.post("/webhooks/sendgrid")
@csrf.exempt
def sendgrid_events():
    """Verify SendGrid's signature, read its events, queue the bounces and complaints."""
    # Imported here: the reader and cryptography cost ~40 ms of CPU at every process
    # start, and most deployments never receive this webhook.
    from worker.bounces import sendgrid
    from worker.bounces.parse import report_to_dict

    key = public_key()
    signature = request.headers.get(sendgrid.SIGNATURE_HEADER, "")
    timestamp = request.headers.get(sendgrid.TIMESTAMP_HEADER, "")
    body = request.get_data(cache=True)
    if not sendgrid.verify_signature(key, signature, timestamp, body):
        refuse_forgery()
    try:
        reports = sendgrid.parse_events(body)
    except ValueError as error:
        abort(400, description=f"Not SendGrid's event JSON: {error}")
    if reports:
        enqueue("worker.jobs.apply_bounce_reports", [report_to_dict(r) for r in reports])
    log.info("sendgrid webhook: %d bounce or complaint events queued", len(reports))
    return "", 204


def public_key() -> "EllipticCurvePublicKey":
    """The setting's key, read once per app; 404 while the webhook is off."""
    from worker.bounces import sendgrid  # start-up cost, as in sendgrid_events

    text = settings().SENDGRID_WEBHOOK_PUBLIC_KEY
    if not text:
        abort(404)
    cached = current_app.extensions.get("sendgrid_webhook_key")
    if cached is None or cached[0] != text:
        try:
            cached = (text, sendgrid.load_public_key(text))
        except ValueError as error:
            log.error("SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used: %s", error)
            abort(503, description="This webhook is misconfigured.")
        current_app.extensions["sendgrid_webhook_key"] = cached
    return cached[1]


def refuse_forgery() -> None:
    """403 for a request SendGrid did not sign; 429 once an address has had too many."""
    address = request.remote_addr or "unknown"
    wait = ratelimit.attempt(f"webhook-ip:{address}", settings().SIGNUP_LIMIT_PER_IP)
    if wait:
        abort(429, description="Too many refused requests.", retry_after=wait)
    log.warning("sendgrid webhook: a request from %s without a valid signature", address)
    abort(403, description="The signature does not match.")
