"""Operator commands through Flask's CLI runner on the real app and database:
`subscribers import` (with a table of hostile rows and files), `digest send
--queue` (real Redis) and the deliveries line of `status`."""

from datetime import date, timedelta

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from newsletter import db, replace_settings, subscriber_file, subscriber_import
from newsletter.cli import main
from newsletter.config import settings
from newsletter.db import utcnow
from newsletter.models import (
    AnnounceType,
    Delivery,
    DeliveryStatus,
    Keyword,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from worker.delivery.messages import new_message_id
from worker.demo.load import load_demo
from worker.queue import QUEUE_NAME

HEADER = "email,keywords,language,timezone,delivery_hour,include_replacements\n"
DAY = date(2024, 11, 28)


def run(app, *args: str):
    return app.test_cli_runner().invoke(main, list(args))


def write(tmp_path, content: str | bytes, name: str = "list.csv") -> str:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return str(path)


def rejections(stderr: str) -> list[str]:
    """The import's lines on stderr without its progress lines."""
    return [line for line in stderr.splitlines() if not line.startswith("importing rows ")]


def stored() -> dict[str, Subscriber]:
    return {s.email_key: s for s in db.session().scalars(select(Subscriber))}


def subscriber_count() -> int:
    return db.session().scalar(select(func.count()).select_from(Subscriber))


# --- subscribers import ---


def test_import_stores_valid_rows_confirmed(app, tmp_path, outbox):
    path = write(
        tmp_path,
        HEADER
        + 'ada@example.org,"reinforcement learning\ndiffusion policy",en,Europe/Berlin,7,yes\n'
        "bob@example.org,grasping cat:cs.RO,en,,,\n",
    )
    result = run(app, "subscribers", "import", path, "--confirmed")
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 2, skipped 0 existing, rejected 0\n"
    # stderr holds only the progress lines (tests/test_progress.py checks them).
    assert rejections(result.stderr) == []
    rows = stored()
    ada, bob = rows["ada@example.org"], rows["bob@example.org"]
    assert ada.keyword_lines == ["reinforcement learning", "diffusion policy"]
    assert (ada.language, ada.timezone, ada.delivery_hour) == ("en", "Europe/Berlin", 7)
    assert ada.include_replacements is True
    assert (bob.timezone, bob.delivery_hour, bob.include_replacements) == ("UTC", None, False)
    for subscriber in (ada, bob):
        assert subscriber.status is SubscriberStatus.CONFIRMED
        assert subscriber.confirmed_at is not None
        assert len(subscriber.public_id) == 32
    assert ada.public_id != bob.public_id
    assert outbox.messages() == []


def test_import_reads_a_spreadsheet_export_with_bom_and_crlf(app, tmp_path):
    content = (
        "\ufeffEmail , Keywords,LANGUAGE,timezone\r\n"
        'ada@example.org,"diffusion policy\r\nreinforcement learning",en,Europe/Berlin\r\n'
    )
    result = run(app, "subscribers", "import", write(tmp_path, content), "--confirmed")
    assert result.stdout == "imported 1, skipped 0 existing, rejected 0\n", result.output
    ada = stored()["ada@example.org"]
    assert ada.keyword_lines == ["diffusion policy", "reinforcement learning"]
    assert ada.timezone == "Europe/Berlin"


def test_import_without_confirmed_sends_each_new_address_the_confirmation(app, tmp_path, outbox):
    db.session().add(Subscriber(email="Old@example.org", email_key="old@example.org"))
    db.session().commit()
    path = write(
        tmp_path,
        "email,keywords,language,timezone\n"
        "ada@example.org,diffusion policy,en,UTC\n"
        "old@EXAMPLE.org,diffusion policy,en,UTC\n",
    )
    result = run(app, "subscribers", "import", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 1, skipped 1 existing, rejected 0\n"
    ada = stored()["ada@example.org"]
    assert ada.status is SubscriberStatus.UNCONFIRMED and ada.confirmed_at is None
    assert ada.confirmation_sent_at is not None
    messages = outbox.messages()
    assert [m["To"] for m in messages] == ["ada@example.org"]
    assert "/confirm/" in messages[0].get_body(("plain",)).get_content()
    # The existing address is untouched: not confirmed, not mailed, same keywords (none).
    assert stored()["old@example.org"].keyword_lines == []


# Each hostile row, its expected reason (a fragment of the sign-up form's message).
HOSTILE_ROWS = [
    ("not-an-email,diffusion policy,en,UTC,,", "email: That is not a valid email address"),
    ('"ada\r@example.org",diffusion policy,en,UTC,,', "email: That is not a valid email address"),
    ('"x\n@example.org",diffusion policy,en,UTC,,', "email: That is not a valid email address"),
    (f"long@example.org,{'k' * 10_000},en,UTC,,", "keywords: Line 1 is longer than 100"),
    ("ctrl@example.org,diffusion\u200bpolicy,en,UTC,,", "keywords: Your keywords contains"),
    ("empty@example.org,,en,UTC,,", "keywords: Enter at least one keyword line."),
    ("syntax@example.org,au:,en,UTC,,", "keywords: Line 1 (au:)"),
    ("tz@example.org,diffusion policy,en,Mars/Olympus,,", "timezone: Choose a timezone"),
    ("lang@example.org,diffusion policy,fr,UTC,,", "language: Choose one of the languages"),
    ("hour@example.org,diffusion policy,en,UTC,24,", "delivery_hour: Choose an hour"),
    ("flag@example.org,diffusion policy,en,UTC,,maybe", "include_replacements: 'maybe'"),
    ("short@example.org,diffusion policy,en", "3 fields, the header has 6"),
    ("ADA@example.org,diffusion policy,en,UTC,,", "the same address as line 2"),
    ("ada@example.org,other words,en,UTC,,", "the same address as line 2"),
    # Two bad keyword lines: the form lists them on two lines, the report keeps one.
    (
        '"two@example.org","au:\nau:",en,UTC,,',
        'Line 1 (au:): “au:” needs a value, e.g. au:"Ada Lovelace". Line 2 (au:)',
    ),
]


def test_import_rejects_each_bad_row_by_line_and_stores_nothing_of_it(app, tmp_path, outbox):
    # Line 2 is good and spans three physical lines (a quoted multi-line field
    # with CRLF inside), so the hostile rows start at line 5.
    lines = [
        'ada@example.org,"reinforcement learning\r\ndiffusion policy\n",en,UTC,,\n',
        "",
    ]
    lines += [row + "\n" for row, _ in HOSTILE_ROWS]
    lines += ["bob@example.org,diffusion policy,en,UTC,,\n"]
    path = write(tmp_path, HEADER + "".join(lines))
    result = run(app, "subscribers", "import", path, "--confirmed")
    assert result.exit_code == 1
    assert result.stdout == f"imported 2, skipped 0 existing, rejected {len(HOSTILE_ROWS)}\n"
    reported = rejections(result.stderr)
    assert len(reported) == len(HOSTILE_ROWS)
    # The second and third rows' quoted emails hold a line break (CR, LF): two lines each.
    expected_lines = [5, 6, 8] + list(range(10, 10 + len(HOSTILE_ROWS) - 3))
    for text, line, (_row, reason) in zip(reported, expected_lines, HOSTILE_ROWS, strict=True):
        assert text.startswith(f"line {line}: "), text
        assert reason in text, (text, reason)
    assert sorted(stored()) == ["ada@example.org", "bob@example.org"]
    assert stored()["ada@example.org"].keyword_lines == [
        "reinforcement learning",
        "diffusion policy",
    ]
    assert db.session().scalar(select(func.count()).select_from(Keyword)) == 3
    assert "Traceback" not in result.output


BAD_FILES = [
    (
        "wrong header",
        b"mail,keywords,language,timezone\nada@example.org,x,en,UTC\n",
        "not the header",
    ),
    ("missing column", b"email,keywords,language\n", "missing timezone"),
    ("unknown column", b"email,keywords,language,timezone,password\n", "unknown password"),
    (
        "invalid UTF-8",
        HEADER.encode() + b"ada@example.org,caf\xe9,en,UTC,,\n",
        "line 2 is not UTF-8",
    ),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "NUL byte"),
    ("gzip", b"\x1f\x8b\x08\x08\xe3\xa1\x93g", "line 1 is not UTF-8"),
    ("empty", b"", "the file is empty"),
    (
        "unclosed quote",
        HEADER.encode() + b'ada@example.org,"diffusion policy,en,UTC,,\n',
        "line 2: not readable as CSV",
    ),
    (
        "huge field",
        HEADER.encode() + b"a," + b"x" * 120_000 + b",en,UTC,,\n",
        "line 2 holds a field",
    ),
    (
        "field over the csv limit",
        HEADER.encode() + b'a,"' + b"x" * 300_000 + b'",en,UTC,,\n',
        "line 2: not readable as CSV (field larger than field limit",
    ),
    ("JSON", b'{"email": "ada@example.org"}\n', "not the header"),
]


@pytest.mark.parametrize(
    ("content", "message"), [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_import_refuses_an_unreadable_file_with_a_message(app, tmp_path, content, message):
    path = write(tmp_path, content)
    result = run(app, "subscribers", "import", path)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not an exception
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert subscriber_count() == 0


def test_a_bad_line_late_in_the_file_stops_the_import_before_anything_is_stored(app, tmp_path):
    rows = "".join(f"r{n}@example.org,diffusion policy,en,UTC,,\n" for n in range(1500))
    path = write(tmp_path, HEADER.encode() + rows.encode() + b"z@example.org,\xff,en,UTC,,\n")
    result = run(app, "subscribers", "import", path, "--confirmed")
    assert result.exit_code == 1 and "line 1502 is not UTF-8" in result.stderr
    assert subscriber_count() == 0


def test_import_of_a_missing_file_is_a_message(app, tmp_path):
    result = run(app, "subscribers", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "nope.csv: cannot read: No such file or directory" in result.stderr


def test_import_refuses_a_file_over_the_size_limit_without_reading_it_whole(
    app, tmp_path, monkeypatch
):
    monkeypatch.setattr(subscriber_file, "MAX_FILE_BYTES", 100)
    path = write(tmp_path, HEADER + "ada@example.org,diffusion policy,en,UTC,,\n" * 3)
    result = run(app, "subscribers", "import", path)
    assert result.exit_code == 1
    assert "more than 100 bytes; import it in parts" in result.stderr
    assert subscriber_count() == 0


def test_import_in_batches_and_again_skips_everyone(app, tmp_path, outbox):
    count = subscriber_import.BATCH_SIZE * 2 + 500
    rows = "".join(
        f'r{n}@example.org,"diffusion policy\nline {n}\ncat:cs.RO",{"en+zh" if n % 100 == 0 else "en"},Asia/Shanghai,{n % 24},\n'
        for n in range(count)
    )
    replace_settings(app, TRANSLATION_BACKEND="recorded")  # offers English + 简体中文
    path = write(tmp_path, HEADER + rows)
    first = run(app, "subscribers", "import", path, "--confirmed")
    assert first.stdout == f"imported {count}, skipped 0 existing, rejected 0\n", first.output
    session = db.session()
    assert subscriber_count() == count
    assert session.scalar(select(func.count()).select_from(Keyword)) == 3 * count
    last = session.scalar(
        select(Subscriber).where(Subscriber.email_key == f"r{count - 1}@example.org")
    )
    assert last.keyword_lines == ["diffusion policy", f"line {count - 1}", "cat:cs.RO"]
    assert last.delivery_hour == (count - 1) % 24
    bilingual = session.scalar(
        select(func.count()).select_from(Subscriber).where(Subscriber.language == "en+zh")
    )
    assert bilingual == len(range(0, count, 100))
    again = run(app, "subscribers", "import", path)
    assert again.stdout == f"imported 0, skipped {count} existing, rejected 0\n"
    assert subscriber_count() == count
    assert outbox.messages() == []


# --- digest send --queue ---


def complete_day(listing_date: date = DAY) -> None:
    db.session().add(ListingDay(listing_date=listing_date, completed_at=utcnow()))
    db.session().commit()


def test_digest_send_queue_without_redis_says_it_needs_redis(app):
    complete_day()
    result = run(app, "digest", "send", "--date", DAY.isoformat(), "--queue")
    assert result.exit_code == 1
    assert "--queue needs Redis: REDIS_URL is not set" in result.stderr


@pytest.fixture
def redis_config(config, redis_url):
    config["REDIS_URL"] = redis_url
    return config


def test_digest_send_queue_hands_the_day_to_the_workers(redis_config, app):
    complete_day()
    db.session().add(
        Subscriber(
            email="ada@example.org",
            email_key="ada@example.org",
            status=SubscriberStatus.CONFIRMED,
            confirmed_at=utcnow(),
            keywords=[Keyword(position=0, text="diffusion policy")],
        )
    )
    db.session().commit()
    result = run(app, "digest", "send", "--date", DAY.isoformat(), "--queue")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{DAY}: queued for the workers (see `newsletter status --date`)\n"
    queue = Queue(QUEUE_NAME, connection=Redis.from_url(settings(app).REDIS_URL))
    # As the scheduler's queue_day does: the translation (if needed) and the dispatch.
    jobs = sorted((job.func_name, job.args[0]) for job in queue.jobs)
    assert jobs == [
        ("worker.jobs.dispatch_digests_job", DAY.isoformat()),
        ("worker.jobs.translate_listing_date", DAY.isoformat()),
    ]
    # Nothing was done in this process: the workers make the rows.
    assert db.session().scalar(select(func.count()).select_from(Delivery)) == 0


def test_digest_send_queue_refuses_a_day_not_ingested(redis_config, app):
    result = run(app, "digest", "send", "--date", DAY.isoformat(), "--queue")
    assert result.exit_code == 1
    assert "is not completely ingested" in result.stderr


# --- status ---


def add_deliveries(listing_date: date, statuses: list[DeliveryStatus]) -> None:
    session = db.session()
    for n, status in enumerate(statuses):
        subscriber = Subscriber(email=f"s{n}-{listing_date}@example.org")
        subscriber.email_key = subscriber.email
        session.add(subscriber)
        session.flush()
        session.add(
            Delivery(
                subscriber_id=subscriber.id,
                listing_date=listing_date,
                status=status,
                message_id=new_message_id("digest@digest.test"),
            )
        )
    session.commit()


def test_status_of_a_date_counts_its_deliveries(app):
    complete_day()
    other = DAY - timedelta(days=1)
    complete_day(other)
    add_deliveries(DAY, [DeliveryStatus.SENT] * 3 + [DeliveryStatus.FAILED, DeliveryStatus.QUEUED])
    add_deliveries(other, [DeliveryStatus.SKIPPED, DeliveryStatus.SENDING])
    result = run(app, "status", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert f"{DAY} complete " in result.stdout
    assert f"deliveries {DAY}: 3 sent, 1 queued, 0 sending, 1 failed, 0 skipped\n" in result.stdout
    assert str(other) not in result.stdout

    listing = run(app, "status")
    assert listing.exit_code == 0, listing.output
    assert f"deliveries {DAY}: 3 sent, 1 queued, 0 sending, 1 failed, 0 skipped\n" in listing.stdout
    assert (
        f"deliveries {other}: 0 sent, 0 queued, 1 sending, 0 failed, 1 skipped\n" in listing.stdout
    )
    # Newest first, each day's deliveries line after its ingest line.
    out = listing.stdout
    assert (
        out.index(f"{DAY} complete")
        < out.index(f"deliveries {DAY}")
        < out.index(f"{other} complete")
    )


def test_status_of_a_date_never_ingested(app):
    replace_settings(app, BASE_URL="https://digest.test")  # no warning
    result = run(app, "status", "--date", "2024-11-27")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "instance: production (settings from the environment)\n"
        "2024-11-27: nothing ingested\n"
        "deliveries 2024-11-27: 0 sent, 0 queued, 0 sending, 0 failed, 0 skipped\n"
    )


@pytest.mark.parametrize("args", [["status"], ["status", "--date", "2024-11-28"]])
def test_status_starts_with_the_settings_warnings(app, args):
    assert settings(app).BASE_URL == "http://digest.test" and not settings(app).DEV
    result = run(app, *args)
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()[:2]
    assert first == "instance: production (settings from the environment)"
    assert second.startswith("warning: BASE_URL is 'http://digest.test', not https")
    assert result.stdout.count("warning: ") == 1


def test_status_refuses_a_bad_date(app):
    result = run(app, "status", "--date", "28/11/2024")
    assert result.exit_code == 1
    assert "--date must be a date like 2024-11-28" in result.stderr


def test_status_counts_the_papers_stored_not_the_feed_fetches(app):
    """The demo day is stored without any feed fetch; status said `0 items` for its 66 papers."""
    replace_settings(app, BASE_URL="https://digest.test")
    demo_date = load_demo(db.session())
    db.session().commit()
    add_deliveries(demo_date, [DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.SKIPPED])
    for args in (["status"], ["status", "--date", demo_date.isoformat()]):
        result = run(app, *args)
        assert result.exit_code == 0, result.output
        assert (
            f"{demo_date} complete " in result.stdout
            and ": 66 items (66 new, 0 cross, 0 replace, 0 replace-cross) stored\n" in result.stdout
        )
        assert (
            f"deliveries {demo_date}: 2 sent, 0 queued, 0 sending, 0 failed, 1 skipped\n"
            in result.stdout
        )


def test_status_counts_papers_by_announce_type(app):
    complete_day()
    session = db.session()
    for n, kind in enumerate(["new", "new", "cross", "replace", "replace-cross"]):
        session.add(
            Paper(
                arxiv_id=f"2411.{n:05d}",
                version=1,
                title="t",
                authors=["A"],
                categories=["cs.LG"],
                abstract="a",
                listing_date=DAY,
                announce_type=AnnounceType(kind),
            )
        )
    session.commit()
    result = run(app, "status", "--date", DAY.isoformat())
    assert ": 5 items (2 new, 1 cross, 1 replace, 1 replace-cross) stored\n" in result.stdout


# --- dates arXiv does not list ---


@pytest.mark.parametrize(
    "day, words, before, after",
    [
        ("2026-05-30", "Saturday 2026-05-30 (a weekend)", "Fri 2026-05-29", "Mon 2026-06-01"),
        ("2026-05-31", "Sunday 2026-05-31 (a weekend)", "Fri 2026-05-29", "Mon 2026-06-01"),
        # Thanksgiving Thursday 2023: no announcement, so no listing dated Friday 24 November.
        ("2023-11-24", "Friday 2023-11-24 (an arXiv holiday)", "Thu 2023-11-23", "Mon 2023-11-27"),
    ],
)
def test_a_date_arxiv_does_not_list_is_named_with_the_nearest_listing_dates(
    app, day, words, before, after
):
    replace_settings(app, TRANSLATION_BACKEND="recorded")
    load_demo(db.session())
    db.session().add(Subscriber(email="alice@example.org", email_key="alice@example.org"))
    db.session().commit()
    expected = f"arXiv lists nothing on {words}: the nearest listing dates are {before} and {after}"
    for args in (
        ["digest", "preview", "alice@example.org", "--date", day],
        ["digest", "send", "--date", day],
        ["translate", "--date", day],
    ):
        result = run(app, *args)
        assert result.exit_code == 1
        assert result.stderr == f"Error: {expected}\n"
    status = run(app, "status", "--date", day)
    assert f"{day}: {expected}\n" in status.stdout
