"""newsletter/subscriber_admin.py through `newsletter subscribers find|suppress|delete|export`
on the real app and database: Flask's CLI runner, the real dispatch and drain for
"no further mail", and an export imported back into an empty database."""

import csv
from datetime import date

import pytest
from conftest import empty_tables
from sqlalchemy import func, select

from newsletter import db, replace_settings
from newsletter.cli import main
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Keyword,
    Subscriber,
    SubscriberStatus,
)
from worker.delivery.dispatch import dispatch_digests
from worker.delivery.sending import drain_day
from worker.demo.load import load_demo

DAY = date(2024, 11, 28)


def run(app, *args: str, input: str | None = None):
    return app.test_cli_runner().invoke(main, list(args), input=input)


def add_subscriber(
    email: str,
    keywords: list[str],
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    **settings,
) -> Subscriber:
    session = db.session()
    subscriber = Subscriber(email=email, email_key=email.casefold(), status=status, **settings)
    subscriber.keywords = [Keyword(position=n, text=text) for n, text in enumerate(keywords)]
    session.add(subscriber)
    session.commit()
    return subscriber


def add_delivery(subscriber: Subscriber, listing_date: date, status: DeliveryStatus, **values):
    session = db.session()
    session.add(
        Delivery(
            subscriber_id=subscriber.id,
            listing_date=listing_date,
            status=status,
            message_id=f"<{subscriber.id}.{listing_date}@digest.test>",
            **values,
        )
    )
    session.commit()


def count(model) -> int:
    return db.session().scalar(select(func.count()).select_from(model))


def assert_one_line_error(result, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1, result.output
    assert text in result.output
    assert "Traceback" not in result.output


# --- find ---


def test_find_shows_status_settings_keywords_and_last_deliveries(app):
    ada = add_subscriber(
        "Ada@example.org",
        ["reinforcement learning", "au:Hinton"],
        language="en",
        timezone="Europe/Berlin",
        delivery_hour=7,
        include_replacements=True,
    )
    add_delivery(ada, DAY, DeliveryStatus.SENT, paper_count=3, sent_at=db.utcnow())
    add_delivery(
        ada, date(2024, 11, 29), DeliveryStatus.FAILED, attempts=2, error="550 5.1.1 no such user"
    )

    result = run(app, "subscribers", "find", "  ADA@EXAMPLE.ORG ")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Ada@example.org"
    assert "  status: confirmed" in lines
    assert (
        "  language: en, timezone: Europe/Berlin, delivery hour: 7:00, replacements: yes" in lines
    )
    assert lines.index("    reinforcement learning") + 1 == lines.index("    au:Hinton")
    assert "  last deliveries (2 shown):" in lines
    # Newest first.
    failed = next(n for n, line in enumerate(lines) if line.startswith("    2024-11-29 failed"))
    sent = next(n for n, line in enumerate(lines) if line.startswith("    2024-11-28 sent"))
    assert failed < sent
    assert "2 attempts: 550 5.1.1 no such user" in lines[failed]
    assert "3 papers, sent " in lines[sent]


@pytest.mark.parametrize("command", ["find", "suppress", "delete"])
@pytest.mark.parametrize(
    "email, message",
    [
        ("nobody@example.org", "Error: no subscriber with the address 'nobody@example.org'"),
        ("not-an-address", "Error: 'not-an-address': That is not a valid email address"),
        ("two@@example.org", "Error: 'two@@example.org': That is not a valid email address"),
    ],
)
def test_unknown_and_malformed_addresses_are_one_line_errors(app, command, email, message):
    add_subscriber("ada@example.org", ["diffusion policy"])
    args = ["subscribers", command, email] + (["--yes"] if command == "delete" else [])

    assert_one_line_error(run(app, *args), message)
    assert count(Subscriber) == 1


# --- suppress ---


def test_suppress_stops_a_queued_digest_and_is_idempotent(app, redis_url, outbox):
    session = db.session()
    demo = load_demo(session)
    session.commit()
    # With Redis the dispatch makes the rows and queues their drain: nothing is sent yet.
    replace_settings(app, REDIS_URL=redis_url)
    stays = add_subscriber("stays@example.com", ["diffusion policy"])
    suppressed = add_subscriber("suppressed@example.com", ["diffusion policy"])
    dispatch_digests(demo)

    first = run(app, "subscribers", "suppress", "Suppressed@Example.com")
    again = run(app, "subscribers", "suppress", "suppressed@example.com")
    summary = drain_day(demo.isoformat())

    assert first.exit_code == 0, first.output
    assert first.output == (
        "suppressed@example.com suppressed (was confirmed); no further mail is sent to it\n"
    )
    assert again.exit_code == 0, again.output
    assert again.output == "suppressed@example.com was already suppressed\n"
    session.expire_all()
    assert session.get(Subscriber, suppressed.id).status is SubscriberStatus.BLOCKLISTED
    assert (summary.sent, summary.skipped) == (1, 1)
    assert [message["To"] for message in outbox.messages()] == [stays.email]
    rows = {row.subscriber_id: row for row in session.scalars(select(Delivery))}
    assert rows[suppressed.id].status is DeliveryStatus.SKIPPED
    # The next day's dispatch makes no row for them at all.
    assert dispatch_digests(demo).queued == 0


# --- delete ---


def test_delete_asks_first_and_removes_every_row_of_theirs(app):
    ada = add_subscriber("ada@example.org", ["reinforcement learning", "diffusion policy"])
    bob = add_subscriber("bob@example.org", ["grasping"])
    add_delivery(ada, DAY, DeliveryStatus.SENT)
    add_delivery(bob, DAY, DeliveryStatus.SENT)

    declined = run(app, "subscribers", "delete", "ada@example.org", input="n\n")
    assert declined.exit_code == 1
    assert "Delete ada@example.org (confirmed) and their keywords? Their 1 deliveries" in (
        declined.output
    )
    assert count(Subscriber) == 2

    accepted = run(app, "subscribers", "delete", "ada@example.org", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.output.endswith(
        "ada@example.org deleted with their keywords; 1 deliveries kept as anonymous counts,"
        " 0 unsent dropped\n"
    )

    session = db.session()
    session.expire_all()
    assert [s.email for s in session.scalars(select(Subscriber))] == ["bob@example.org"]
    assert [k.subscriber_id for k in session.scalars(select(Keyword))] == [bob.id]
    # Ada's sent digest stays as an anonymous count (newsletter/personal_data.py).
    assert [d.subscriber_id for d in session.scalars(select(Delivery).order_by(Delivery.id))] == [
        None,
        bob.id,
    ]


def test_delete_with_yes_does_not_ask(app):
    add_subscriber("ada@example.org", ["diffusion policy"])

    result = run(app, "subscribers", "delete", "ada@example.org", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "ada@example.org deleted with their keywords; 0 deliveries kept as anonymous counts,"
        " 0 unsent dropped\n"
    )
    assert (count(Subscriber), count(Keyword)) == (0, 0)


# --- export ---


def snapshot() -> dict[str, tuple]:
    session = db.session()
    session.expire_all()
    return {
        s.email: (
            s.status,
            s.keyword_lines,
            s.language,
            s.timezone,
            s.delivery_hour,
            s.include_replacements,
            s.tldr,
            s.frequency,
            s.weekday,
        )
        for s in session.scalars(select(Subscriber))
    }


def test_export_then_import_into_an_empty_database_gives_the_same_subscribers(
    app, database_url, tmp_path
):
    replace_settings(app, TRANSLATION_BACKEND="recorded")  # offers en+zh, as on the exporting site
    add_subscriber(
        "ada@example.org",
        ["reinforcement learning", '"neural network" -vision', "grasping cat:cs.RO"],
        language="en+zh",
        timezone="Europe/Berlin",
        delivery_hour=7,
        include_replacements=True,
        tldr=True,
    )
    add_subscriber(
        "Bob@example.org",
        ['au:"Geoffrey Hinton"'],
        timezone="America/New_York",
        frequency="weekly",
        weekday=4,
    )
    add_subscriber(
        "carol@example.org", ["diffusion policy", 'transformer -"computer vision"'], delivery_hour=0
    )
    add_subscriber("gone@example.org", ["diffusion policy"], SubscriberStatus.UNSUBSCRIBED)
    before = snapshot()
    path = tmp_path / "list.csv"

    exported = run(app, "subscribers", "export", str(path))

    assert exported.exit_code == 0, exported.output
    assert exported.output == f"exported 3 subscribers (confirmed) to {path}\n"
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == (
        "email,keywords,language,timezone,delivery_hour,include_replacements,tldr,frequency,weekday"
    ).split(",")
    assert len(rows) == 4

    db.session().close()
    empty_tables(database_url)
    imported = run(app, "subscribers", "import", str(path), "--confirmed")

    assert imported.exit_code == 0, imported.output
    assert imported.stdout == "imported 3, skipped 0 existing, rejected 0\n"
    del before["gone@example.org"]
    assert snapshot() == before


def test_export_chooses_statuses(app, tmp_path):
    add_subscriber("ada@example.org", ["diffusion policy"])
    add_subscriber("gone@example.org", ["grasping"], SubscriberStatus.UNSUBSCRIBED)
    add_subscriber("new@example.org", ["grasping"], SubscriberStatus.UNCONFIRMED)
    path = tmp_path / "list.csv"

    result = run(
        app,
        "subscribers",
        "export",
        str(path),
        "--status",
        "unsubscribed",
        "--status",
        "unconfirmed",
    )

    assert result.exit_code == 0, result.output
    with open(path, encoding="utf-8", newline="") as file:
        emails = [row["email"] for row in csv.DictReader(file)]
    assert emails == ["gone@example.org", "new@example.org"]


def test_export_to_an_unwritable_path_is_a_one_line_error(app, tmp_path):
    add_subscriber("ada@example.org", ["diffusion policy"])

    missing = run(app, "subscribers", "export", str(tmp_path / "no-such-dir" / "list.csv"))
    folder = run(app, "subscribers", "export", str(tmp_path))

    assert_one_line_error(missing, "cannot write: No such file or directory")
    assert_one_line_error(folder, "cannot write: Is a directory")
