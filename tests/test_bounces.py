"""worker/bounces/: recorded real reports (tests/data/bounces/, sisimai's set-of-emails)
parsed, then matched to deliveries the tests make and applied on the real database.

The samples' Message-IDs and addresses are not ours, so a test that checks
matching rewrites the original Message-ID and recipient inside the report to
those of a delivery it made (`rewrite`); the report's structure stays as recorded.
"""

import logging
from datetime import date, timedelta
from pathlib import Path

import pytest

from newsletter import db
from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from worker import jobs
from worker.bounces import effects
from worker.bounces.parse import Kind, Report, parse_report, report_from_dict, report_to_dict

SAMPLES = Path(__file__).resolve().parent / "data" / "bounces"
DAY = date(2026, 11, 20)

# Every recorded message, and what it says, read from the file (its delivery-status
# or feedback-report fields and the attached original's headers).
EXPECTED = [
    # (file, kind, original recipients, original Message-ID)
    ("arf-01.eml", Kind.COMPLAINT, ("redacted@example.net",), None),
    (
        "arf-02.eml",
        Kind.COMPLAINT,
        ("this-local-part-does-not-exist-on-yahoo@yahoo.com",),
        "<000000000000000000000000.smtp@example.com>",
    ),
    ("arf-11.eml", Kind.COMPLAINT, (), "<ffffffffffffffffffffffffff0000000000@example.net>"),
    # Feedback-Type: opt-out, Removal-Recipient; headers attached as text/rfc822-header.
    (
        "arf-12.eml",
        Kind.COMPLAINT,
        ("user@example.com",),
        "<0000000000000000000000000@example.net>",
    ),
    (
        "lhost-amazonses-01.eml",
        Kind.HARD,
        ("shironeko@example.co.jp",),
        "<000001321defbd2a-788e31c8-2be1-422f-a8d4-cf7765cc9ed7-000000@email.amazonses.com>",
    ),
    (
        "lhost-amazonses-02.eml",
        Kind.HARD,
        ("this-local-part-does-not-exist-on-the-server@docomo.ne.jp",),
        "<00000132e188591e-2882d710-aacc-49e9-bfac-5400b02ffb9b-000000@email.amazonses.com>",
    ),
    (
        "lhost-amazonses-03.eml",
        Kind.HARD,
        ("kijitora@example.jp",),
        "<00000132d6ca0cd4-ff6d8ee5-29a0-4501-a68a-3ff8695254bb-000000@email.amazonses.com>",
    ),
    # The attached original has no Message-ID.
    ("lhost-exchange2007-01.eml", Kind.HARD, ("mikeneko@example.co.jp",), None),
    # Free text with X-Failed-Recipients; the Message-ID from the returned copy.
    (
        "lhost-exim-01.eml",
        Kind.HARD,
        ("kijitora@example.ed.jp",),
        "<E1P1ce6-000Egt-GZ@e1.example.org>",
    ),
    (
        "lhost-exim-02.eml",
        Kind.HARD,
        ("kijitora@example.jp", "sabatora@example.jp"),
        "<E1X58pB-0004bW-2s@marutamachi.example.org>",
    ),
    (
        "lhost-gmail-01.eml",
        Kind.HARD,
        ("userunknown@example.jp",),
        "<D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com>",
    ),
    (
        "lhost-gmail-04.eml",
        Kind.HARD,
        ("kijitora@example.com",),
        "<CAJYcEwW7ghrwjbwmwK3GKRG98qSVTKhGBvnkbVH1RdwFJwHWFQ@mail.gmail.com>",
    ),
    (
        "lhost-googlegroups-01.eml",
        Kind.HARD,
        ("libsisimai@googlegroups.com",),
        "<D0E3D626-1C96-4749-8101-62C0CE13B1D5@example.jp>",
    ),
    # multipart/report without a message/delivery-status part: free text only.
    ("lhost-office365-01.eml", Kind.UNKNOWN, (), None),
    (
        "lhost-outlook-01.eml",
        Kind.HARD,
        ("kijitora@example.jp",),
        "<BLU436-SMTP6645ECA6E7FEFFE86D040BBA770@phx.gbl>",
    ),
    # Original-Recipient (what was sent) wins over Final-Recipient (an alias target);
    # the attached message is empty.
    ("lhost-postfix-01.eml", Kind.HARD, ("kijitora@example.org",), None),
    (
        "lhost-postfix-02.eml",
        Kind.HARD,
        ("filtered@example.co.jp", "userunknown@example.co.jp"),
        None,
    ),
    (
        "lhost-postfix-03.eml",
        Kind.HARD,
        ("kijitora@example.net",),
        "<20140701000000.000000000000@e1.example.ne.jp>",
    ),
    (
        "lhost-postfix-04.eml",
        Kind.HARD,
        ("kijitora@example.co.jp",),
        "<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>",
    ),
    (
        "lhost-sendgrid-01.eml",
        Kind.HARD,
        ("kijitora@example.jp",),
        "<F9B4AEED-722D-47FD-929E-3625AF2161BB@example.jp>",
    ),
    (
        "lhost-sendmail-01.eml",
        Kind.HARD,
        ("userunknown@bouncehammer.jp",),
        "<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>",
    ),
    (
        "lhost-sendmail-02.eml",
        Kind.HARD,
        ("userunknown@example.org", "filtered@example.com"),
        "<C6625D0F-A302-4980-BEAB-2AF883EA0116@example.jp>",
    ),
    # Free text without X-Failed-Recipients: left for a person.
    ("lhost-yahoo-01.eml", Kind.UNKNOWN, (), None),
    (
        "rfc3464-01.eml",
        Kind.HARD,
        ("userunknown@bouncehammer.jp",),
        "<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>",
    ),
    (
        "rfc3464-03.eml",
        Kind.HARD,
        ("kijitora@example.com",),
        "<220000000022.0000.0000000000000000222@NEKO.NYAAN>",
    ),
    # Declared multipart/report, but its boundary never occurs: one unreadable body.
    ("rfc3464-04.eml", Kind.UNKNOWN, (), None),
    # RFC 3834 automatic replies: nothing.
    ("rfc3834-01.eml", Kind.NONE, (), None),
    ("rfc3834-02.eml", Kind.NONE, (), None),
]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def rewrite(raw: bytes, replacements: dict[str, str]) -> bytes:
    """The report with the sample's original Message-ID and addresses replaced by ours."""
    for old, new in replacements.items():
        assert old.encode() in raw, f"{old} is not in the sample"
        raw = raw.replace(old.encode(), new.encode())
    return raw


def make_subscriber(email: str, bounces: int = 0) -> Subscriber:
    subscriber = Subscriber(
        email=email,
        email_key=email.casefold(),
        status=SubscriberStatus.CONFIRMED,
        bounce_count=bounces,
    )
    db.session().add(subscriber)
    db.session().flush()
    return subscriber


def make_delivery(
    subscriber: Subscriber,
    listing_date: date = DAY,
    status: DeliveryStatus = DeliveryStatus.SENT,
) -> Delivery:
    delivery = Delivery(
        subscriber_id=subscriber.id,
        listing_date=listing_date,
        status=status,
        message_id=f"<digest-{subscriber.id}-{listing_date}@digest.test>",
        sent_at=db.utcnow() if status is DeliveryStatus.SENT else None,
    )
    db.session().add(delivery)
    db.session().commit()
    return delivery


def bare(message_id: str) -> str:
    return message_id.strip("<>")


def apply(raw: bytes, limit: int = 3) -> str:
    outcome = effects.apply_report(db.session(), parse_report(raw), limit)
    db.session().commit()
    return outcome


def test_every_recorded_sample_is_in_the_table():
    assert sorted(p.name for p in SAMPLES.glob("*.eml")) == sorted(row[0] for row in EXPECTED)


@pytest.mark.parametrize(("name", "kind", "recipients", "message_id"), EXPECTED)
def test_a_recorded_report_says_its_kind_recipient_and_message_id(
    name, kind, recipients, message_id
):
    report = parse_report(sample(name))

    assert (report.kind, report.recipients, report.message_id) == (kind, recipients, message_id)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("lhost-outlook-01.eml", "5.2.2"),
        ("lhost-postfix-03.eml", "5.0.0"),
        ("lhost-sendmail-02.eml", "5.1.1"),
        ("arf-02.eml", "abuse"),
        ("arf-12.eml", "opt-out"),
    ],
)
def test_a_report_keeps_its_status_or_feedback_type(name, status):
    assert parse_report(sample(name)).status == status


def delayed(raw: bytes) -> bytes:
    """A recorded Postfix DSN turned into a delay notice (Action and Status only)."""
    return rewrite(raw, {"Action: failed": "Action: delayed", "Status: 5.1.1": "Status: 4.4.1"})


def test_a_delay_notice_is_a_soft_bounce():
    report = parse_report(delayed(sample("lhost-postfix-04.eml")))

    assert (report.kind, report.recipients, report.status) == (
        Kind.SOFT,
        ("kijitora@example.co.jp",),
        "4.4.1",
    )


def test_a_report_survives_the_round_trip_through_a_job_argument():
    report = parse_report(sample("lhost-postfix-03.eml"))

    assert report_from_dict(report_to_dict(report)) == report


def test_garbage_is_not_a_report():
    assert parse_report(b"\x00\xff not a message at all").kind is Kind.NONE


# --- effects, on the real database ---


def test_a_hard_bounce_matched_by_message_id_counts_once_however_often_it_is_read(app):
    ada = make_subscriber("ada@example.org")
    delivery = make_delivery(ada)
    raw = rewrite(
        sample("lhost-postfix-03.eml"),
        {
            "20140701000000.000000000000@e1.example.ne.jp": bare(delivery.message_id),
            "kijitora@example.net": "ada@example.org",
        },
    )

    assert apply(raw) == effects.COUNTED
    assert apply(raw) == effects.ALREADY_COUNTED

    db.session().expire_all()
    assert ada.bounce_count == 1 and ada.status is SubscriberStatus.CONFIRMED
    assert delivery.bounced_at is not None and delivery.status is DeliveryStatus.SENT


def test_the_message_id_decides_even_when_the_report_names_another_address(app):
    ada, bob = make_subscriber("ada@example.org"), make_subscriber("bob@example.org")
    delivery = make_delivery(bob)
    raw = rewrite(
        sample("lhost-sendmail-01.eml"),
        {
            "E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org": bare(delivery.message_id),
            "userunknown@bouncehammer.jp": "ada@example.org",
        },
    )

    assert apply(raw) == effects.COUNTED

    db.session().expire_all()
    assert (ada.bounce_count, bob.bounce_count) == (0, 1)


def test_a_hard_bounce_at_the_limit_suppresses_the_subscriber(app):
    ada = make_subscriber("ada@example.org", bounces=1)
    delivery = make_delivery(ada)
    raw = rewrite(
        sample("lhost-amazonses-02.eml"),
        {
            "00000132e188591e-2882d710-aacc-49e9-bfac-5400b02ffb9b-000000@email.amazonses.com": (
                bare(delivery.message_id)
            ),
        },
    )

    assert apply(raw, limit=2) == effects.SUPPRESSED

    db.session().expire_all()
    assert (ada.bounce_count, ada.status) == (2, SubscriberStatus.BLOCKLISTED)


def test_without_our_message_id_the_recipient_finds_the_latest_sent_digest(app):
    ada = make_subscriber("Ada@Example.org")
    older = make_delivery(ada, DAY - timedelta(days=1))
    latest = make_delivery(ada)
    # lhost-postfix-02 attaches no Message-ID and names two recipients.
    raw = rewrite(sample("lhost-postfix-02.eml"), {"userunknown@example.co.jp": "ada@example.org"})

    assert apply(raw) == effects.COUNTED
    assert apply(raw) == effects.ALREADY_COUNTED

    db.session().expire_all()
    assert ada.bounce_count == 1
    assert (older.bounced_at, latest.bounced_at is not None) == (None, True)


def test_a_digest_refused_at_sending_is_not_counted_again_when_its_bounce_arrives(app):
    ada = make_subscriber("ada@example.org", bounces=1)  # counted when the 5xx came
    delivery = make_delivery(ada, status=DeliveryStatus.FAILED)
    raw = rewrite(
        sample("lhost-postfix-04.eml"),
        {"A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp": bare(delivery.message_id)},
    )

    assert apply(raw) == effects.ALREADY_COUNTED

    db.session().expire_all()
    assert ada.bounce_count == 1 and delivery.bounced_at is None


def test_a_hard_bounce_for_an_address_we_never_sent_a_digest_changes_nothing(app):
    ada = make_subscriber("ada@example.org")
    db.session().commit()
    raw = rewrite(sample("lhost-postfix-01.eml"), {"kijitora@example.org": "ada@example.org"})

    assert apply(raw) == effects.NO_DELIVERY

    db.session().expire_all()
    assert ada.bounce_count == 0


def test_a_soft_bounce_is_logged_only(app, caplog):
    ada = make_subscriber("ada@example.org")
    delivery = make_delivery(ada)
    raw = rewrite(
        delayed(sample("lhost-postfix-04.eml")),
        {"A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp": bare(delivery.message_id)},
    )

    with caplog.at_level(logging.INFO, logger="worker.bounces.effects"):
        assert apply(raw) == effects.SOFT

    db.session().expire_all()
    assert (ada.bounce_count, ada.status, delivery.bounced_at) == (
        0,
        SubscriberStatus.CONFIRMED,
        None,
    )
    assert f"soft bounce for subscriber {ada.id}" in caplog.text


# Complaints matched by Message-ID with the recipient (arf-02, arf-12's
# Removal-Recipient), by Message-ID alone (arf-11 names no address), by the
# recipient alone (arf-01 carries no Message-ID).
COMPLAINTS = [
    (
        "arf-02.eml",
        {
            "000000000000000000000000.smtp@example.com": "{message_id}",
            "this-local-part-does-not-exist-on-yahoo@yahoo.com": "ada@example.org",
        },
    ),
    ("arf-11.eml", {"ffffffffffffffffffffffffff0000000000@example.net": "{message_id}"}),
    (
        "arf-12.eml",
        {
            "0000000000000000000000000@example.net": "{message_id}",
            "user@example.com": "ada@example.org",
        },
    ),
    # arf-01's attached original has no Message-ID: its To names the reader.
    ("arf-01.eml", {"redacted@example.net": "ada@example.org"}),
]


@pytest.mark.parametrize(("name", "replacements"), COMPLAINTS)
def test_a_complaint_unsubscribes_at_once(app, caplog, name, replacements):
    ada = make_subscriber("ada@example.org")
    delivery = make_delivery(ada)
    ours = {
        old: new.format(message_id=bare(delivery.message_id)) for old, new in replacements.items()
    }
    raw = rewrite(sample(name), ours)

    with caplog.at_level(logging.INFO, logger="worker.bounces.effects"):
        assert apply(raw) == effects.UNSUBSCRIBED
        assert apply(raw) == effects.ALREADY_UNSUBSCRIBED

    db.session().expire_all()
    assert ada.status is SubscriberStatus.UNSUBSCRIBED and ada.unsubscribed_at is not None
    assert ada.bounce_count == 0
    assert f"from subscriber {ada.id}: unsubscribed" in caplog.text


@pytest.mark.parametrize(
    "name", ["rfc3834-01.eml", "rfc3834-02.eml", "lhost-yahoo-01.eml", "lhost-office365-01.eml"]
)
def test_auto_replies_and_unreadable_bounces_change_nothing(app, name):
    ada = make_subscriber("kijitora@example.com")  # office365-01's recipient, in free text
    make_delivery(ada)

    assert apply(sample(name)) in (Kind.NONE.value, Kind.UNKNOWN.value)

    db.session().expire_all()
    assert (ada.bounce_count, ada.status) == (0, SubscriberStatus.CONFIRMED)


def test_a_bounce_of_a_message_that_is_not_our_digest_counts_nothing(app):
    """Backscatter (spam that forged our sender address bounced back), or an account
    email: its Message-ID is not one of our digests, so its address is not trusted."""
    ada = make_subscriber("ada@example.org")
    make_delivery(ada)
    raw = rewrite(sample("lhost-postfix-03.eml"), {"kijitora@example.net": "ada@example.org"})

    assert apply(raw) == effects.UNMATCHED

    db.session().expire_all()
    assert ada.bounce_count == 0


def test_a_report_about_someone_else_is_unmatched(app):
    make_delivery(make_subscriber("ada@example.org"))

    assert apply(sample("lhost-sendmail-01.eml")) == effects.UNMATCHED


def test_the_webhook_job_applies_reports_given_as_plain_values(app):
    ada, bob = make_subscriber("ada@example.org"), make_subscriber("bob@example.org")
    delivery = make_delivery(ada)
    reports = [
        Report(Kind.HARD, ("someone@example.net",), delivery.message_id, "5.1.1"),
        # The relay's Message-ID for it, not ours: a webhook's address is still trusted.
        Report(Kind.COMPLAINT, ("BOB@example.org",), "<14c5d75ce93.dfd.64b469@ismtpd-555>"),
    ]

    outcomes = jobs.apply_bounce_reports([report_to_dict(r) for r in reports])

    assert outcomes == {effects.COUNTED: 1, effects.UNSUBSCRIBED: 1}
    db.session().expire_all()
    assert ada.bounce_count == 1 and bob.status is SubscriberStatus.UNSUBSCRIBED
