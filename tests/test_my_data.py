"""Download my data and erase me (newsletter/my_data.py, personal_data.py, erased_notice.py)
through Flask's test client on the real database, with the dev outbox for the last
email: what the JSON holds, what erasing removes and keeps, that the operator's
figures stay, and hostile input (wrong token, wrong address, no CSRF, oversized
body, a second POST) that must erase nothing or answer a clear page."""

import json
import secrets
from datetime import date

import pytest
from conftest import Outbox
from redis import Redis
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_subscriptions import csrf_from

from newsletter import admin, db, replace_settings
from newsletter.cli import main
from newsletter.config import settings
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Keyword,
    ListingDay,
    Subscriber,
    SubscriberStatus,
)
from newsletter.my_data import ERASED_NOTICE_FAILURE_TTL
from newsletter.personal_data import erase_subscriber
from newsletter.tokens import make_token
from worker.bounces.effects import UNMATCHED, apply_report
from worker.bounces.parse import Kind, Report
from worker.queue import QUEUE_NAME

# One row per outcome, on successive listing dates; queued and sending are not sent yet.
STATUSES = list(DeliveryStatus)
DATES = admin.recent_listing_dates(date(2024, 12, 6), len(STATUSES))
DAY = DATES[0]


def add_subscriber(email: str, status=SubscriberStatus.CONFIRMED, **values) -> Subscriber:
    session = db.session()
    subscriber = Subscriber(email=email, email_key=email.casefold(), status=status, **values)
    subscriber.keywords = [
        Keyword(position=0, text="reinforcement learning"),
        Keyword(position=1, text="au:Hinton -vision"),
    ]
    session.add(subscriber)
    session.flush()
    for n, (status_, day) in enumerate(zip(STATUSES, DATES, strict=True)):
        session.add(
            Delivery(
                subscriber_id=subscriber.id,
                listing_date=day,
                status=status_,
                message_id=f"<{secrets.token_hex(8)}.{day}@digest.test>",
                paper_count=n + 1,
                sections=[["reinforcement learning", [f"2411.{n:05d}"]]],
                error="550 5.1.1 <{}>: no such user".format(email)
                if status_ is DeliveryStatus.FAILED
                else None,
                sent_at=db.utcnow() if status_ is DeliveryStatus.SENT else None,
                bounced_at=db.utcnow() if status_ is DeliveryStatus.SENT else None,
                claimed_by="worker-1" if status_ is DeliveryStatus.SENDING else None,
            )
        )
    session.commit()
    return subscriber


def token_for(app, subscriber: Subscriber, purpose: str = "manage") -> str:
    return make_token(app.config["SECRET_KEY"], purpose, subscriber.public_id)


def count(model) -> int:
    return db.session().scalar(select(func.count()).select_from(model))


def erase(client, token: str, typed: str, csrf: str | None = None):
    form = {"email": typed, "csrf_token": csrf or csrf_from(client, f"/erase/{token}")}
    return client.post(f"/erase/{token}", data=form)


# --- download ---


def test_download_is_every_row_of_theirs_as_a_json_attachment_and_writes_nothing(app, client):
    ada = add_subscriber("Ada@example.org", language="en", timezone="Europe/Berlin")
    add_subscriber("bob@example.org")
    ada.confirmed_at = ada.created_at
    ada.delivery_hour = 7
    db.session().commit()
    before = ada.updated_at
    token = token_for(app, ada)

    response = client.post(
        f"/my-data/{token}", data={"csrf_token": csrf_from(client, f"/manage/{token}")}
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="arxiv-digest-my-data.json"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    person = data["subscriber"]
    assert person["email"] == "Ada@example.org"
    assert (person["status"], person["language"], person["timezone"]) == (
        "confirmed",
        "en",
        "Europe/Berlin",
    )
    assert person["delivery_hour"] == 7 and person["include_replacements"] is False
    assert person["created_at"] == ada.created_at.isoformat()
    assert person["confirmed_at"] == ada.confirmed_at.isoformat()
    # Internal keys are not the reader's data.
    assert not {"id", "public_id", "email_key"} & set(person)
    assert data["keywords"] == ["reinforcement learning", "au:Hinton -vision"]
    assert [(d["listing_date"], d["status"]) for d in data["deliveries"]] == [
        (day.isoformat(), status.value) for day, status in zip(DATES, STATUSES, strict=True)
    ]
    sent = data["deliveries"][STATUSES.index(DeliveryStatus.SENT)]
    assert sent["sent_at"] is not None and sent["paper_count"] == 3
    assert sent["sections"] == [["reinforcement learning", ["2411.00002"]]]
    assert not {"id", "subscriber_id", "message_id", "claimed_by"} & set(sent)
    # Bob's rows are not in Ada's file.
    assert len(data["deliveries"]) == len(STATUSES)
    db.session().expire_all()
    assert db.session().get(Subscriber, ada.id).updated_at == before


@pytest.mark.parametrize(
    "path, method, with_csrf, status",
    [
        ("/my-data/{token}", "get", False, 405),  # a GET would be a link a scanner follows
        ("/my-data/{token}", "post", False, 400),  # no CSRF token
        ("/my-data/{token}x", "post", True, 404),  # a token cut or changed
        ("/my-data/{unsubscribe}", "post", True, 404),  # an unsubscribe token cannot read it
        ("/my-data/{feed}", "post", True, 404),  # nor can a feed token
        ("/erase/{token}x", "get", False, 404),
        ("/erase/{unsubscribe}", "get", False, 404),
        ("/erase/{token}x", "post", True, 404),
        ("/erase/{feed}", "post", True, 404),
        ("/erase/{token}", "put", True, 405),
    ],
)
def test_my_data_refuses_what_is_not_the_manage_pages_own(
    app, client, path, method, with_csrf, status
):
    ada = add_subscriber("ada@example.org")
    tokens = {
        "token": token_for(app, ada),
        "unsubscribe": token_for(app, ada, "unsubscribe"),
        "feed": token_for(app, ada, "feed"),
    }
    data = {"csrf_token": csrf_from(client, f"/manage/{tokens['token']}")} if with_csrf else {}
    data["email"] = "ada@example.org"  # what an erase form would hold

    response = getattr(client, method)(path.format(**tokens), data=data)

    assert response.status_code == status
    assert "ada@example.org" not in response.get_data(as_text=True)
    assert (count(Subscriber), count(Keyword)) == (1, 2)


# --- erase ---


def test_erase_asks_first_and_a_wrong_address_erases_nothing(app, client, outbox):
    ada = add_subscriber("ada@example.org")
    token = token_for(app, ada)

    page = client.get(f"/erase/{token}")
    assert page.status_code == 200
    assert "ada@example.org" in page.get_data(as_text=True)
    manage = client.get(f"/manage/{token}").get_data(as_text=True)
    assert f'href="/erase/{token}"' in manage
    assert f'action="/my-data/{token}"' in manage

    for typed in ("", "bob@example.org", "ada@example.org.evil", "x" * 100_000):
        response = erase(client, token, typed)
        if len(typed) > 60_000:
            assert response.status_code == 413  # the site's 64 KiB body cap
            continue
        assert response.status_code == 400, typed
        assert "Type your address exactly as shown above" in response.get_data(as_text=True)
    # No CSRF token: refused before anything is read.
    assert client.post(f"/erase/{token}", data={"email": "ada@example.org"}).status_code == 400
    assert (count(Subscriber), count(Keyword), count(Delivery)) == (1, 2, len(STATUSES))
    assert outbox.messages() == []


def test_erase_removes_the_person_keeps_anonymous_counts_and_sends_one_last_email(
    app, client, outbox
):
    ada = add_subscriber("Ada@Example.org")
    bob = add_subscriber("bob@example.org")
    tokens = {purpose: token_for(app, ada, purpose) for purpose in ("manage", "unsubscribe")}
    feed = token_for(app, ada, "feed")
    digest = make_token(app.config["SECRET_KEY"], "digest", [ada.public_id, DAY.isoformat()])
    # Ingested days: /metrics counts the deliveries of the last 3 of them.
    db.session().add_all(ListingDay(listing_date=day, completed_at=db.utcnow()) for day in DATES)
    db.session().commit()
    figures_before = operator_figures(app)
    # The figures hold Ada's digests (a comparison of empty lists would prove nothing).
    assert 'newsletter_deliveries_sent_recently{minutes="5"} 2.0' in figures_before["metrics"]
    assert figures_before["delivered"][0].values[STATUSES.index(DeliveryStatus.SENT)] == 2
    bob_rows = delivery_rows(bob.id)

    # Any case and spacing of the address is the address.
    response = erase(client, tokens["manage"], "  ada@example.ORG ")

    assert response.status_code == 302
    assert response.headers["Location"] == "/erased"
    page = client.get("/erased")
    assert page.status_code == 200 and "Your data is erased" in page.get_data(as_text=True)

    session = db.session()
    session.expire_all()
    assert [s.email for s in session.scalars(select(Subscriber))] == ["bob@example.org"]
    assert {k.subscriber_id for k in session.scalars(select(Keyword))} == {bob.id}
    # The rows with an outcome stay, naming no one and holding nothing of theirs.
    kept = session.scalars(select(Delivery).where(Delivery.subscriber_id.is_(None))).all()
    assert {row.status for row in kept} == {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
    }
    assert len(kept) == 3
    for row in kept:
        assert (row.sections, row.error, row.claimed_by) == (None, None, None)
    assert delivery_rows(bob.id) == bob_rows
    assert operator_figures(app) == figures_before

    [last] = outbox.messages()
    assert last["To"] == "Ada@Example.org"
    assert last["Subject"] == "Your arXiv digest data is erased"
    assert last["Message-ID"] and last["Date"] and last["Auto-Submitted"] == "auto-generated"
    assert last["List-Unsubscribe"] is None
    text = last.get_body(("plain",)).get_content()
    assert "erased this address" in text and "http://digest.test/" in text
    assert "reinforcement learning" not in text

    # Every link of theirs is dead, with a page that says so (never a 500).
    for path in (f"/manage/{tokens['manage']}", f"/unsubscribe/{tokens['unsubscribe']}"):
        assert client.get(path).status_code == 404
    assert client.get(f"/feed/{feed}").status_code == 404
    assert client.get(f"/digest/{digest}").status_code == 404
    for path in (f"/erase/{tokens['manage']}", f"/my-data/{tokens['manage']}"):
        again = client.post(path, data={"csrf_token": csrf_from(client, "/")})
        assert again.status_code == 410, path
        assert "Nothing stored for this link" in again.get_data(as_text=True)
    assert client.get(f"/erase/{tokens['manage']}").status_code == 410
    assert len(outbox.messages()) == 1


def delivery_rows(subscriber_id: int) -> list[tuple]:
    rows = db.session().scalars(
        select(Delivery).where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id)
    )
    return [(r.listing_date, r.status, r.sections, r.error, r.message_id) for r in rows]


def operator_figures(app) -> dict:
    """/admin's delivery plots and `newsletter status --date` for the sent-or-finished days."""
    session = db.session()
    status = [
        app.test_cli_runner().invoke(main, ["status", "--date", day.isoformat()]).output
        for day, status_ in zip(DATES, STATUSES, strict=True)
        # queued and sending rows of an erased reader go: nobody is left to send them to.
        if status_ not in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
    ]
    replace_settings(app, METRICS_TOKEN="scrape")
    metrics = app.test_client().get("/metrics", headers={"Authorization": "Bearer scrape"})
    assert metrics.status_code == 200
    unsent = tuple(f'status="{s.value}"' for s in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING))
    return {
        # Per listing date and status, and sent in the last 5 and 60 minutes.
        "metrics": [
            line
            for line in metrics.get_data(as_text=True).splitlines()
            if line.startswith("newsletter_deliveries") and not any(u in line for u in unsent)
        ],
        "delivered": admin.delivery_series(session, DATES),
        "delay": admin.send_delay_series(session, DATES),
        "bounced": admin.bounce_series(session, DATES),
        "status": status,
    }


def test_a_bilingual_reader_is_told_in_their_language(app, client, outbox):
    ada = add_subscriber("ada@example.org", language="en+zh")

    response = erase(client, token_for(app, ada), "ada@example.org")

    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page and "Your data is erased" not in page
    [last] = outbox.messages()
    assert not last["Subject"].isascii()  # the chrome's catalogue, as the other account emails


def test_a_suppressed_address_is_erased_without_a_last_email(app, client, outbox):
    ada = add_subscriber("ada@example.org", status=SubscriberStatus.BLOCKLISTED)

    assert erase(client, token_for(app, ada), "ada@example.org").status_code == 302

    assert count(Subscriber) == 0
    assert outbox.messages() == []


def test_two_erasures_racing_send_one_email(app, client, outbox):
    """Both requests loaded the subscriber; the second to delete finds no row."""
    ada = add_subscriber("ada@example.org")
    with Session(db.session().get_bind()) as other:
        mine = other.get(Subscriber, ada.id)
        first = erase_subscriber(db.session(), db.session().get(Subscriber, ada.id))
        db.session().commit()
        assert first is not None and (first.kept, first.dropped) == (3, 2)
        assert erase_subscriber(other, mine) is None
        other.commit()
    assert count(Subscriber) == 0 and count(Delivery) == 3


def test_a_late_bounce_of_an_erased_readers_digest_matches_no_one(app, client):
    ada = add_subscriber("ada@example.org")
    sent = db.session().scalar(
        select(Delivery.message_id).where(Delivery.status == DeliveryStatus.SENT)
    )
    assert erase(client, token_for(app, ada), "ada@example.org").status_code == 302
    # A new subscriber at the same address is not the erased one.
    add_subscriber("ada@example.org")
    session = db.session()

    for trust in (False, True):
        report = Report(Kind.HARD, ("ada@example.org",), sent, "5.1.1")
        assert apply_report(session, report, settings(app).BOUNCE_LIMIT, trust) == UNMATCHED
    session.commit()
    assert session.scalars(select(Subscriber.bounce_count)).all() == [0]


def test_the_clis_delete_is_the_same_erasure_without_an_email(app, outbox):
    add_subscriber("ada@example.org")

    result = app.test_cli_runner().invoke(
        main, ["subscribers", "delete", "ada@example.org", "--yes"]
    )

    assert result.exit_code == 0, result.output
    assert result.output == (
        "ada@example.org deleted with their keywords; 3 deliveries kept as anonymous counts,"
        " 2 unsent dropped\n"
    )
    assert (count(Subscriber), count(Keyword), count(Delivery)) == (0, 0, 3)
    assert Outbox(outbox.path).messages() == []


def test_with_rq_the_last_email_job_keeps_the_address_a_day_if_it_fails(app, client, redis_url):
    """RQ keeps a failed job, and so its arguments (the erased address), for a
    year by default: the erasure's job is queued with a day's failure TTL."""
    ada = add_subscriber("ada@example.org")
    token = token_for(app, ada)
    replace_settings(app, REDIS_URL=redis_url)
    connection = Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    queue.empty()
    try:
        assert erase(client, token, "ada@example.org").status_code == 302
        [job] = queue.jobs
        assert job.func_name == "newsletter.erased_notice.send_erased_notice"
        assert job.args[0] == "ada@example.org"
        assert job.failure_ttl == ERASED_NOTICE_FAILURE_TTL == 24 * 3600
    finally:
        queue.empty()
        connection.close()
