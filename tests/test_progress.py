"""Progress of the long commands (newsletter/cli/progress.py) and the stages' callbacks.

Each command runs through click's CliRunner (not a terminal: plain lines on
stderr) on real data; one runs in a pseudo-terminal, where click draws its bar.
"""

import io
import os
import pty
import re
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from arxiv_server import Reply
from sqlalchemy import func
from sqlalchemy import select as sql_select
from test_delivery import add_many, demo, sink  # noqa: F401 (fixtures)
from test_ingest import _oai_page, poll_config  # noqa: F401 (fixture)
from test_translation import (  # noqa: F401 (fixtures)
    add_subscriber,
    chat_server,
    openai_settings,
    store_sample_day,
)

from newsletter import db
from newsletter.cli import main
from newsletter.cli.progress import ProgressLines
from newsletter.models import Subscriber
from worker import calendar

LINE = re.compile(
    r"^(?P<verb>[a-z ]+) (?P<done>[\d,]+) / (?P<total>[\d,]+) \((?P<share>\d+)%\), "
    r"(?:ETA \d+:\d\d:\d\d|done in \d+:\d\d:\d\d)$"
)


def progress_lines(stderr: str, verb: str) -> list[tuple[int, int]]:
    """(done, total) of each progress line of `verb`, checking each line's share."""
    found = []
    for text in stderr.splitlines():
        match = LINE.match(text)
        if match and match["verb"] == verb:
            done, total = (int(match[n].replace(",", "")) for n in ("done", "total"))
            assert int(match["share"]) == done * 100 // total, text
            found.append((done, total))
    return found


def assert_steady(lines: list[tuple[int, int]], total: int) -> None:
    """Counts rise to `total`, with a line at each tenth of the work at least."""
    assert lines, "no progress line"
    assert all(t == total for _d, t in lines), lines
    counts = [d for d, _t in lines]
    assert counts == sorted(set(counts)) and counts[-1] == total, counts
    steps = {d * 10 // total for d in counts}
    for step in range(1, 11):
        # The tenth `step` was reached by some line at or past it.
        assert any(s >= step for s in steps), (step, counts)


# --- the lines themselves (pure) ---


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_tenth_and_every_five_seconds_with_an_eta():
    clock, out = Clock(), io.StringIO()
    lines = ProgressLines("sending digests", out, clock)
    clock.now += 6
    lines.update(100, 10_000)  # 1 %: not a new tenth, but 6 s have passed
    lines.update(200, 10_000)  # neither
    clock.now += 1
    lines.update(1_000, 10_000)  # the first tenth
    clock.now += 11
    lines.update(4_000, 10_000)
    lines.update(10_000, 10_000)
    lines.finish()
    assert out.getvalue().splitlines() == [
        "sending digests 100 / 10,000 (1%), ETA 0:09:54",
        "sending digests 1,000 / 10,000 (10%), ETA 0:01:03",
        "sending digests 4,000 / 10,000 (40%), ETA 0:00:27",
        "sending digests 10,000 / 10,000 (100%), done in 0:00:18",
    ]


def test_a_stage_that_stops_early_gets_its_last_count_shown():
    clock, out = Clock(), io.StringIO()
    lines = ProgressLines("sending digests", out, clock)
    lines.update(50, 1_000)  # under a tenth, under 5 s: not shown yet
    lines.finish()
    assert out.getvalue() == "sending digests 50 / 1,000 (5%), ETA 0:00:00\n"


# --- each command, not on a terminal ---


def csv_file(tmp_path, count: int) -> str:
    rows = [f"reader{n}@example.org,diffusion policy,en,UTC" for n in range(count)]
    path = tmp_path / "subscribers.csv"
    path.write_text("email,keywords,language,timezone\n" + "\n".join(rows) + "\n")
    return str(path)


def test_subscribers_import_reports_rows(app, tmp_path):
    result = app.test_cli_runner().invoke(
        main, ["subscribers", "import", csv_file(tmp_path, 25), "--confirmed"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 25, skipped 0 existing, rejected 0\n"
    assert_steady(progress_lines(result.stderr, "importing rows"), 25)


def test_digest_send_reports_rows_sent(sink, demo, app):  # noqa: F811
    add_many(10)  # all match; DELIVERY_BATCH_SIZE 4: three batches
    result = app.test_cli_runner().invoke(main, ["digest", "send", "--date", demo.isoformat()])
    assert result.exit_code == 0, result.output
    assert "sent 10, skipped 0, failed 0" in result.stdout
    lines = progress_lines(result.stderr, "sending digests")
    # After each batch of 4 (a line at each new tenth): 4, 8, then the last 2.
    assert lines == [(4, 10), (8, 10), (10, 10)]
    assert sink.count() == 10
    # And `newsletter status` counts them (one query per table, by enum value).
    status = app.test_cli_runner().invoke(main, ["status", "--date", demo.isoformat()])
    assert "66 items (" in status.stdout
    assert f"deliveries {demo}: 10 sent, 0 queued, 0 sending, 0 failed, 0 skipped" in status.stdout


def test_translate_reports_papers(openai_settings, app, chat_server):  # noqa: F811
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["reinforcement learning", "diffusion policy", "robot"])
    session.commit()
    result = app.test_cli_runner().invoke(main, ["translate"])
    assert result.exit_code == 0, result.output
    translated = int(re.search(r"translated (\d+),", result.stdout)[1])
    assert translated > 8  # several batches of TRANSLATION_BATCH_SIZE 4
    assert_steady(progress_lines(result.stderr, "translating papers"), translated)


def test_ingest_since_reports_records_harvested(poll_config, server, app):  # noqa: F811
    # Two recorded OAI-PMH pages of 6 records, said to be 12 in all, one record
    # re-dated into the backfilled week (a week ago: within MAX_BACKFILL_DAYS).
    recent = datetime.now(UTC) - timedelta(days=7)
    stamp = recent.strftime("%a, %d %b %Y 12:00:00 GMT").replace(" 0", " ").encode()
    pages = [_oai_page("page-2"), _oai_page(None, page=2)]
    pages = [
        page.replace(b'completeListSize="58011"', b'completeListSize="12"').replace(
            b"Mon, 21 Sep 2026 12:00:00 GMT", stamp
        )
        for page in pages
    ]
    server.serve("/oai", *(Reply(body=page) for page in pages))
    since = calendar.previous_listing_date(recent.date() - timedelta(days=3))
    result = app.test_cli_runner().invoke(main, ["ingest", "--since", since.isoformat()])
    assert result.exit_code == 0, result.output
    assert progress_lines(result.stderr, "harvesting records") == [(6, 12), (12, 12)]
    assert len(server.requests) == 2


# --- on a terminal: click's bar ---


def test_a_terminal_gets_a_bar_with_the_final_count(app, database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NEWSLETTER_DEV")}
    env.update(
        SECRET_KEY="test-secret-key",
        DATABASE_URL=database_url,
        BASE_URL="https://digest.test",
        OUTBOX_DIR=str(tmp_path / "outbox"),
        ARXIV_CONTACT="tests@digest.test",
        TERM="xterm",
    )
    path = csv_file(tmp_path, 30)
    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "subscribers", "import", path, "--confirmed"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0, shown
    assert stdout == b"imported 30, skipped 0 existing, rejected 0\n"
    text = shown.decode()
    # The bar is redrawn in place (\r) and ends on the final count; no plain lines.
    assert "\r" in text and "importing rows" in text
    final = [part for part in text.split("\r") if "importing rows" in part][-1]
    assert re.search(r"importing rows\s+\[#+\]\s+30/30\s+100%", final), text
    assert not progress_lines(text.replace("\r", "\n"), "importing rows")
    db.session().rollback()
    assert db.session().scalar(sql_select(func.count()).select_from(Subscriber)) == 30
