"""The service run as production runs it: the Procfile's web, worker and clock under honcho.

PostgreSQL (TEST_DATABASE_URL; without it this test skips, CI sets it in its
second pass), the tests' private Redis, aiosmtpd on 127.0.0.1 and the
recorded full day of arXiv served over local HTTP, re-dated to the listing
date due now. Every setting reaches the processes through the environment,
as in .env.example. The clock's first poll ingests the day (and dispatches it,
to nobody yet); then a reader signs up through gunicorn, confirms through the
link in the confirmation email, and that day's digest arrives within a minute
of confirming (issue 11: it used to wait for the next poll, ~15 minutes).
"""

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from arxiv_server import Reply, fixture, with_pub_date
from conftest import empty_tables, free_port
from smtp_server import SmtpSink, run_smtp
from sqlalchemy import create_engine, select
from test_schedule import ALL_ARCHIVES, FULL_DAY

from newsletter.models import ListingDay
from worker import calendar

PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CONFIRM_LINK = re.compile(r"https?://\S+/confirm/\S+")
# Seconds a step may take before the test gives up (the bar is 60 for the digest).
START_TIMEOUT = 60
DIGEST_TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="production runs on PostgreSQL: set TEST_DATABASE_URL (CI's second pass does)",
)


def wait_for(check, timeout: float, what: str, processes: subprocess.Popen):
    """`check()`'s first truthy value, polled; fails naming `what` and showing honcho's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if processes.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout} s; honcho said:\n{stop(processes)}")


def stop(processes: subprocess.Popen) -> str:
    """Stop honcho (it stops its processes) and return what they printed."""
    if processes.poll() is None:
        processes.send_signal(signal.SIGINT)
        try:
            processes.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(processes.pid, signal.SIGKILL)
            processes.wait(5)
    with processes.stdout:
        return processes.stdout.read()


def feed_for(listing_date) -> bytes:
    """The recorded full day, dated `listing_date` as arXiv dates its feed."""
    recorded = fixture(FULL_DAY)
    new = f"{listing_date:%a, %d %b %Y} 00:00:00 -0500"
    return with_pub_date(recorded, "Thu, 28 Nov 2024 00:00:00 -0500", new)


def environment(database_url: str, redis_url: str, smtp_port: int, feed_url: str, base: str):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("NEWSLETTER_", "SMTP_", "ARXIV_", "DKIM_"))
    }
    bin_dir = str(Path(sys.executable).parent)
    return env | {
        "PATH": f"{bin_dir}:{env.get('PATH', '')}",
        "SECRET_KEY": "production-test-secret-key",
        "BASE_URL": base,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "arXiv digest <digest@digest.test>",
        "ARXIV_RSS_URL": feed_url,
        "ARXIV_ARCHIVE_GROUPS": ALL_ARCHIVES,
        "ARXIV_MIN_INTERVAL": "0",
        "ARXIV_RETRIES": "0",
        "ARXIV_CONTACT": "tests@digest.test",
        "PYTHONUNBUFFERED": "1",
    }


def messages_to(sink: SmtpSink, address: str, subject_start: str) -> list:
    return [
        m for m in sink.messages() if m["To"] == address and m["Subject"].startswith(subject_start)
    ]


def test_sign_up_confirm_and_the_days_digest_arrive_under_honcho(
    database_url, redis_url, server, tmp_path
):
    empty_tables(database_url)
    due = calendar.due_listing_date(datetime.now(UTC))
    server.serve(f"/rss/{ALL_ARCHIVES}", Reply(body=feed_for(due)))
    sink = SmtpSink()
    engine = create_engine(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_smtp(sink) as smtp_port:
        env = environment(database_url, redis_url, smtp_port, server.url + "/rss/", base)
        (tmp_path / "empty.env").write_text("")
        processes = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(PROCFILE), "-d", str(tmp_path)]
            + ["-e", str(tmp_path / "empty.env"), "-p", str(port), "web", "worker", "clock"],
            cwd=tmp_path,  # no .env of the checkout is read
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            run_the_walk(processes, engine, sink, base, due)
        finally:
            output = stop(processes)
            engine.dispose()
    assert "Traceback" not in output, output


def day_complete(engine, due) -> bool:
    with engine.connect() as connection:
        completed = connection.scalar(
            select(ListingDay.completed_at).where(ListingDay.listing_date == due)
        )
    return completed is not None


def page_up(base: str) -> bool:
    try:
        return requests.get(base + "/", timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or its workers still booting
        return False


def run_the_walk(processes, engine, sink: SmtpSink, base: str, due) -> None:
    wait_for(lambda: day_complete(engine, due), START_TIMEOUT, "the clock's first poll", processes)
    wait_for(lambda: page_up(base), START_TIMEOUT, "gunicorn answering", processes)
    browser = requests.Session()
    form = {
        "email": "ada@example.org",
        "keywords": "reinforcement learning",
        "language": "en",
        "timezone": "Asia/Shanghai",
        "delivery_hour": "asap",
        "csrf_token": CSRF.search(browser.get(base + "/", timeout=10).text).group(1),
    }
    signed_up = browser.post(base + "/", data=form, timeout=10, allow_redirects=False)
    assert signed_up.status_code == 302, signed_up.text
    [confirmation] = wait_for(
        lambda: messages_to(sink, "ada@example.org", "Confirm"), 30, "confirmation email", processes
    )
    link = CONFIRM_LINK.search(confirmation.get_body(("plain",)).get_content()).group(0)
    assert link.startswith(base), link
    page = browser.get(link, timeout=10)
    assert page.status_code == 200
    confirmed = browser.post(link, data={"csrf_token": CSRF.search(page.text).group(1)}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    confirmed_at = time.monotonic()
    [digest] = wait_for(
        lambda: messages_to(sink, "ada@example.org", "arXiv digest ·"),
        DIGEST_TIMEOUT,
        "the day's digest after confirming",
        processes,
    )
    waited = time.monotonic() - confirmed_at
    assert f"{due:%a} {due.day} {due:%b %Y}" in digest["Subject"], digest["Subject"]
    assert "reinforcement learning" in digest["Subject"]
    print(f"digest arrived {waited:.1f} s after confirming")
