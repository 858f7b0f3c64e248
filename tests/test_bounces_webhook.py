"""POST /webhooks/sendgrid on the real app: SendGrid's recorded payloads
(tests/data/bounces/json-sendgrid-*.json), signed as SendGrid signs them (ECDSA
P-256 over timestamp + body) with a key made here; the reports are applied by
the job the view queues (in-process without Redis; on a real Redis in the last test).
"""

import base64
import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_bounces import make_delivery, make_subscriber, sample

from newsletter import db, ratelimit, replace_settings
from newsletter.models import SubscriberStatus
from worker.bounces.parse import Kind
from worker.bounces.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events

URL = "/webhooks/sendgrid"
TIMESTAMP = "1700000000"
KEY = ec.generate_private_key(ec.SECP256R1())


def public_key_text(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The key as SendGrid's settings show it: base64 of the DER SubjectPublicKeyInfo."""
    der = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(body: bytes, key: ec.EllipticCurvePrivateKey = KEY, timestamp: str = TIMESTAMP):
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }


def post(client, body: bytes, headers: dict | None = None):
    return client.post(URL, data=body, headers=signed(body) if headers is None else headers)


@pytest.fixture
def config(config):
    config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key_text(KEY)
    config["SIGNUP_LIMIT_PER_IP"] = 3
    ratelimit.reset_local()
    return config


def test_the_recorded_payloads_read_as_hard_bounces():
    reports = parse_events(sample("json-sendgrid-02.json"))

    assert [(r.kind, r.recipients, r.status) for r in reports] == [
        (Kind.HARD, ("kijitora@example.ne.jp",), "550"),
        (Kind.HARD, ("kijitora@example.co.jp",), "5.2.2"),
    ]


def test_the_webhook_is_off_without_its_key(app, client):
    replace_settings(app, SENDGRID_WEBHOOK_PUBLIC_KEY=None)

    assert post(client, sample("json-sendgrid-01.json")).status_code == 404


def test_signed_bounces_count_toward_the_limit_once_however_often_they_are_posted(app, client):
    ada, bob = make_subscriber("ada@example.org"), make_subscriber("bob@example.org", bounces=2)
    ada_digest, bob_digest = make_delivery(ada), make_delivery(bob)
    # The recorded payload, addressed to our subscribers (it carries no Message-ID).
    body = (
        sample("json-sendgrid-02.json")
        .replace(b"kijitora@example.ne.jp", b"ada@example.org")
        .replace(b"kijitora@example.co.jp", b"bob@example.org")
    )

    first, again = post(client, body), post(client, body)

    assert (first.status_code, again.status_code) == (204, 204)
    db.session().expire_all()
    assert (ada.bounce_count, ada.status) == (1, SubscriberStatus.CONFIRMED)
    assert (bob.bounce_count, bob.status) == (3, SubscriberStatus.BLOCKLISTED)  # BOUNCE_LIMIT 3
    assert ada_digest.bounced_at is not None and bob_digest.bounced_at is not None


def test_a_recorded_payload_about_strangers_is_accepted_and_changes_nothing(app, client):
    ada = make_subscriber("ada@example.org")
    make_delivery(ada)

    assert post(client, sample("json-sendgrid-01.json")).status_code == 204

    db.session().expire_all()
    assert ada.bounce_count == 0


def test_event_webhook_events_by_their_documented_names(app, client):
    """Events as SendGrid's Event Webhook reference shows them (not recorded traffic):
    a spam report matched by smtp-id, a blocked bounce (soft), a delivery (nothing)."""
    ada, bob = make_subscriber("ada@example.org"), make_subscriber("bob@example.org")
    digest = make_delivery(ada)
    events = [
        {
            "email": "someone-else@example.net",
            "timestamp": 1513299569,
            "smtp-id": digest.message_id,
            "event": "spamreport",
            "sg_event_id": "e1",
            "sg_message_id": "m1",
        },
        {
            "email": "bob@example.org",
            "timestamp": 1513299569,
            "event": "bounce",
            "type": "blocked",
            "status": "4.0.0",
            "reason": "421 try again later",
        },
        {"email": "bob@example.org", "timestamp": 1513299569, "event": "delivered"},
    ]

    assert post(client, json.dumps(events).encode()).status_code == 204

    db.session().expire_all()
    assert ada.status is SubscriberStatus.UNSUBSCRIBED
    assert (bob.status, bob.bounce_count) == (SubscriberStatus.CONFIRMED, 0)


def forged_requests() -> list[tuple[str, bytes, dict]]:
    body = sample("json-sendgrid-01.json")
    other_key = ec.generate_private_key(ec.SECP256R1())
    return [
        ("no headers", body, {"Content-Type": "application/json"}),
        ("another key", body, signed(body, other_key)),
        ("body changed", body.replace(b"550", b"551"), signed(body)),
        ("timestamp changed", body, {**signed(body), TIMESTAMP_HEADER: "1700000001"}),
        ("not base64", body, {**signed(body), SIGNATURE_HEADER: "%%%"}),
        ("not a signature", body, {**signed(body), SIGNATURE_HEADER: "AAAA"}),
    ]


@pytest.mark.parametrize(
    ("case", "body", "headers"), forged_requests(), ids=[c[0] for c in forged_requests()]
)
def test_a_request_sendgrid_did_not_sign_is_refused(app, client, case, body, headers):
    ada = make_subscriber("kijitora@example.ne.jp")
    make_delivery(ada)

    assert post(client, body, headers).status_code == 403

    db.session().expire_all()
    assert ada.bounce_count == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"email": "a@example.org"}',
        b"[1, 2]",
        sample("json-amazonses-01.json"),  # another relay's format
    ],
)
def test_a_signed_body_that_is_not_sendgrids_json_is_a_400(app, client, body):
    assert post(client, body).status_code == 400


def test_refused_requests_from_one_address_are_limited(app, client):
    body = sample("json-sendgrid-01.json")
    forged = {**signed(body), TIMESTAMP_HEADER: "1"}

    codes = [post(client, body, forged).status_code for _ in range(4)]

    assert codes == [403, 403, 403, 429]
    assert post(client, body).status_code == 204  # SendGrid's own requests still pass


def test_a_key_that_is_not_p256_is_a_503_not_a_500(app, client, caplog):
    replace_settings(app, SENDGRID_WEBHOOK_PUBLIC_KEY=base64.b64encode(b"not a key").decode())

    assert post(client, sample("json-sendgrid-01.json")).status_code == 503
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used" in caplog.text


# Run in a fresh interpreter: the test session has long imported everything.
WEB_PROCESS = """
import json, sys
from newsletter import create_app

config, headers, body = json.loads(sys.argv[1])
app = create_app(config)
answer = app.test_client().post("/webhooks/sendgrid", data=body.encode(), headers=headers)
print(json.dumps({"status": answer.status_code, "modules": sorted(sys.modules)}))
"""


def test_the_web_process_queues_the_reports_without_loading_the_sending_code(
    config, redis_url, tmp_path
):
    config.update(REDIS_URL=redis_url)
    body = sample("json-sendgrid-02.json")
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, json.dumps([config, signed(body), body.decode()])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])

    assert report["status"] == 204
    assert [m for m in report["modules"] if m.startswith(("worker.delivery", "worker.jobs"))] == []
    from redis import Redis
    from rq import Queue

    with Redis.from_url(redis_url) as connection:
        jobs = Queue("default", connection=connection).jobs
    assert [job.func_name for job in jobs] == ["worker.jobs.apply_bounce_reports"]
    assert [r["recipients"] for r in jobs[0].args[0]] == [
        ["kijitora@example.ne.jp"],
        ["kijitora@example.co.jp"],
    ]


def test_a_batch_larger_than_a_form_is_taken_and_a_larger_one_refused(app, client):
    """SendGrid posts batches of up to 768 KB: over the forms' 64 KB cap, under the webhooks'."""
    ada = make_subscriber("ada@example.org")
    make_delivery(ada)
    bounce = {"email": "ada@example.org", "timestamp": 1513299569, "event": "bounce"}
    bounce |= {"type": "bounce", "status": "5.1.1", "reason": "550 no such user"}
    filler = {"email": "x@example.net", "timestamp": 1513299569, "event": "delivered"}
    batch = json.dumps([bounce] + [filler] * 9_000).encode()
    assert 64 * 1024 < len(batch) < 768 * 1024

    assert post(client, batch).status_code == 204
    db.session().expire_all()
    assert ada.bounce_count == 1

    too_large = json.dumps([filler] * 20_000).encode()
    assert len(too_large) > 1024 * 1024
    assert post(client, too_large).status_code == 413
    form = {"email": "x" * (70 * 1024) + "@example.org", "keywords": "a", "language": "en"}
    assert client.post("/", data=form).status_code == 413
