"""Every email we send, scored by SpamAssassin's local rules: at most 0.5 each.

Debian's `spamd` (installed by .ci/run with `spamassassin` and `spamc`) runs once
for the module with `-L` (local rules only, no network), and `spamc -R` asks it
for each message's score and test report: the same rules and points as
`spamassassin -L -t` gives (compared on all seven messages), without loading
and compiling the rules again for each message as every `spamassassin` run did
(~3 s of CPU a message). The messages are the wire bytes the service sends: the
account emails as the sign-up job writes them to the outbox (the app's real path), the digests as
worker/delivery/sending.py builds them (DayDigest.render_email, then
DigestMime) in English and bilingual, for a reader whose digest fits and for
readers past the size budget (the full day of 2024-11-28, 1,504 papers; the
bilingual demo day of a broad reader).

Each message must score at most 0.5 and no rule may add to its score (HTML_MESSAGE
adds 0.001 to any HTML mail). Without the spamd and spamc binaries the tests skip
with that reason; nothing else skips them.

One cause is not ours to fix: LONGWORDS (2.2) fires on plain scientific prose
(six words of 8+ letters in a row, or nine of 6+ and ten of 5+), which some
abstracts are: 12 of the 200 seeded full-day digests of tests/test_golden.py
(by the rules' regular expressions; full-019 checked with spamassassin: 1.2).
The template cannot remove it without hiding characters in the abstracts'
text; `test_an_abstract_of_long_words_still_scores_longwords` keeps that case
measured (a strict xfail: it fails once such a digest passes).
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import make_msgid
from functools import cache
from urllib.parse import urlsplit

import pytest
from conftest import free_port
from test_digest import full_day, sample
from test_golden import FULL_DAY, GOLDEN_CONFIG, full_day_readers, links
from test_subscriptions import csrf_from, sign_up

from newsletter.config import load_settings
from worker.delivery.mime import DigestMime
from worker.demo.load import DEMO_LISTING_DATE
from worker.digest.core import DayDigest, Reader
from worker.digest.layout import HTML_BUDGET

# spamd lives in /usr/sbin, on root's PATH but not on every user's.
SPAMD = shutil.which("spamd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
SPAMC = shutil.which("spamc")
pytestmark = pytest.mark.skipif(
    SPAMD is None or SPAMC is None,
    reason="spamd or spamc is absent (apt-get install -y spamassassin spamd spamc; .ci/run does)",
)
# The bar: a score this low leaves every default threshold (5.0) far away.
MAX_SCORE = 0.5
SENT = datetime(2026, 5, 29, 11, 33, tzinfo=UTC)
# spamc -R's first line: "score/threshold".
SCORE = re.compile(r"\A(-?[\d.]+)/-?[\d.]+\n")
CONFIRM_LINK = re.compile(r"https?://\S+/confirm/\S+")
# A line of the report's table: " 0.7 HTML_FONT_LOW_CONTRAST BODY: ..."
RULE = re.compile(r"^ *(-?\d+\.\d) ([A-Z0-9_]+) ", re.M)


@pytest.fixture(scope="module")
def spamd() -> Iterator[int]:
    """One spamd (local rules only) for the module, on a free port; yields the port.

    Its own folder holds the helpers' HOME and an empty Bayes database, and -x
    reads no user preferences: nothing from the machine's SpamAssassin users.
    No auto-learning: learning a message into Bayes, after it is scored, cost
    15% of each check, and an empty database's Bayes rules fire on nothing.
    Started as root, spamd checks as nobody, hence a folder nobody may write.
    """
    with tempfile.TemporaryDirectory(prefix="spamd-") as folder:
        os.chmod(folder, 0o777)
        port = free_port()
        command = [SPAMD, "-L", "-x", "--listen", f"127.0.0.1:{port}", "--allowed-ips", "127.0.0.1"]
        command += ["--max-children", "3", "--helper-home-dir", folder, "--syslog", "stderr"]
        command += ["--pidfile", f"{folder}/spamd.pid", "--cf", f"bayes_path {folder}/bayes"]
        command += ["--cf", "bayes_auto_learn 0"]
        if os.geteuid() == 0:
            command += ["--username", "nobody"]
        env = {"HOME": folder, "PATH": "/usr/bin:/bin:/usr/sbin", "LANG": "C.UTF-8"}
        with open(f"{folder}/spamd.log", "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_spamd(port, process, f"{folder}/spamd.log")
            yield port
        finally:
            process.terminate()
            process.wait(30)


def wait_for_spamd(port: int, process: subprocess.Popen, log: str) -> None:
    """Return once spamd answers a PING: it listens only after compiling its rules."""
    deadline = time.monotonic() + 120
    ping = [SPAMC, "-d", "127.0.0.1", "-p", str(port), "-K"]
    while subprocess.run(ping, capture_output=True).returncode != 0:
        with open(log, encoding="utf-8", errors="replace") as text:
            assert process.poll() is None and time.monotonic() < deadline, text.read()[-2000:]
        time.sleep(0.2)


def spam_report(raw: bytes, port: int) -> tuple[float, dict[str, float]]:
    """SpamAssassin's score of the message (local rules only) and the points of each rule hit."""
    result = subprocess.run(
        # -x: an error fails instead of spamc's safe fallback (the message unscored, "0/0");
        # -s: no message is too large to check (spamc's default limit is 500 KB).
        [SPAMC, "-d", "127.0.0.1", "-p", str(port), "-R", "-x", "-s", str(64 * 1024 * 1024)],
        input=raw,
        capture_output=True,
        timeout=300,
        check=True,
    )
    output = result.stdout.decode("utf-8", "replace")
    found = SCORE.search(output)
    assert found, output[-2000:]
    table = output[output.index("Content analysis details") :]
    return float(found.group(1)), {name: float(pts) for pts, name in RULE.findall(table)}


def spam_reports(
    messages: dict[str, bytes], port: int
) -> dict[str, tuple[float, dict[str, float]]]:
    """Each message's report; a few at once (spamd checks each in a child of its own)."""
    with ThreadPoolExecutor(3) as pool:
        reports = pool.map(lambda raw: spam_report(raw, port), messages.values())
        return dict(zip(messages, reports, strict=True))


def digest_bytes(day: DayDigest, reader: Reader, name: str) -> tuple[bytes, int]:
    """The digest's wire bytes as sending.py builds them, and its HTML size."""
    sections = day.sections({name: reader})[name]
    assert sections, name
    email = day.render_email(reader, sections, SENT, links(name))
    mime = DigestMime(
        replace(
            load_settings({}, ".", dev=True), MAIL_FROM="arXiv digest <digest@digest.example.org>"
        )
    )
    raw = mime.build(
        to=f"{name}@example.org",
        subject=email.subject,
        text_segments=email.text_segments,
        html_segments=email.html_segments,
        message_id=make_msgid(domain="digest.example.org"),
        one_click_url=links(name)["one_click_url"],
        date=SENT,
    )
    return raw, len(email.html.encode())


def demo_day() -> DayDigest:
    papers, translations = sample()
    return DayDigest.from_rows(DEMO_LISTING_DATE, papers, translations, GOLDEN_CONFIG)


@cache
def full() -> DayDigest:
    """The full day, built once for both tests (its renders do not depend on its caches)."""
    return DayDigest.from_rows(FULL_DAY, full_day(), {}, GOLDEN_CONFIG)


def digests() -> dict[str, tuple[bytes, int]]:
    demo = demo_day()
    keywords = ("reinforcement learning", "diffusion policy")
    broad = ("learning", "model", "robot", "data")
    readers = {
        "digest-en": (demo, Reader(keywords, "en", "UTC", False)),
        "digest-en-zh": (demo, Reader(keywords, "en+zh", "Asia/Shanghai", False)),
        "digest-en-zh-overflow": (demo, Reader(broad, "en+zh", "Asia/Shanghai", False)),
        "digest-en-overflow": (full(), Reader(broad, "en", "America/New_York", True)),
    }
    return {name: digest_bytes(day, reader, name) for name, (day, reader) in readers.items()}


def account_emails(client, outbox) -> dict[str, bytes]:
    """The confirmation, then (confirmed, signing up again) the already-subscribed email,
    as the sign-up job writes them."""
    assert sign_up(client, email="ada@example.org").status_code == 302
    [confirmation] = outbox.path.glob("*.eml")
    link = CONFIRM_LINK.search(outbox.messages()[0].get_body(("plain",)).get_content())
    path = urlsplit(link.group(0)).path
    confirmed = client.post(path, data={"csrf_token": csrf_from(client, path)})
    assert confirmed.status_code == 302, confirmed.status_code
    assert sign_up(client, email="ada@example.org").status_code == 302
    [again] = set(outbox.path.glob("*.eml")) - {confirmation}
    messages = {"confirmation": confirmation.read_bytes(), "already-subscribed": again.read_bytes()}
    assert b"Subject: Your arXiv digest subscription" in messages["already-subscribed"]
    return messages


def test_every_email_we_send_scores_at_most_half_a_point(app, client, outbox, spamd):
    messages = account_emails(client, outbox)
    for name, (raw, html_size) in digests().items():
        messages[name] = raw
        if name.endswith("overflow"):
            # Past the size budget: the digest is the one cut to fit.
            assert html_size > HTML_BUDGET * 0.9, (name, html_size)
    reports = spam_reports(messages, spamd)
    too_high = {name: r for name, r in reports.items() if r[0] > MAX_SCORE}
    assert not too_high, too_high
    adding = {
        name: {rule: pts for rule, pts in rules.items() if pts > 0}
        for name, (_, rules) in reports.items()
    }
    assert not any(adding.values()), adding


# full-019 of tests/test_golden.py: "... retrieve specific individuals across camera
# networks using natural language descriptions." in one of its abstracts.
@pytest.mark.xfail(strict=True, reason="LONGWORDS fires on the abstracts' own prose")
def test_an_abstract_of_long_words_still_scores_longwords(spamd):
    reader = full_day_readers()["full-019"]
    raw, _ = digest_bytes(full(), reader, "full-019")
    score, rules = spam_report(raw, spamd)
    assert "LONGWORDS" not in rules and score <= MAX_SCORE, (score, rules)
