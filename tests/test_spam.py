"""Every email we send, scored by SpamAssassin's local rules: at most 0.5 each.

Debian's `spamassassin` (installed by .ci/run) runs as `spamassassin -L -t`:
local rules only, no network, the message's test report in its output. The
messages are the wire bytes the service sends: the account emails as the
sign-up job writes them to the outbox (the app's real path), the digests as
worker/delivery/sending.py builds them (DayDigest.render_email, then
DigestMime) in English and bilingual, for a reader whose digest fits and for
readers past the size budget (the full day of 2024-11-28, 1,504 papers; the
bilingual demo day of a broad reader).

Each message must score at most 0.5 and no rule may add to its score (HTML_MESSAGE
adds 0.001 to any HTML mail). Without the spamassassin binary the tests skip
with that reason; nothing else skips them.

One cause is not ours to fix: LONGWORDS (2.2) fires on plain scientific prose
(six words of 8+ letters in a row, or nine of 6+ and ten of 5+), which some
abstracts are: 12 of the 200 seeded full-day digests of tests/test_golden.py
(by the rules' regular expressions; full-019 checked with spamassassin: 1.2).
The template cannot remove it without hiding characters in the abstracts'
text; `test_an_abstract_of_long_words_still_scores_longwords` keeps that case
measured (a strict xfail: it fails once such a digest passes).
"""

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import make_msgid
from urllib.parse import urlsplit

import pytest
from test_digest import full_day, sample
from test_golden import FULL_DAY, GOLDEN_CONFIG, full_day_readers, links
from test_subscriptions import csrf_from, sign_up

from newsletter.config import load_settings
from worker.delivery.mime import DigestMime
from worker.demo.load import DEMO_LISTING_DATE
from worker.digest.core import DayDigest, Reader
from worker.digest.layout import HTML_BUDGET

SPAMASSASSIN = shutil.which("spamassassin")
pytestmark = pytest.mark.skipif(
    SPAMASSASSIN is None,
    reason="the spamassassin binary is absent (apt-get install -y spamassassin; .ci/run does)",
)
# The bar: a score this low leaves every default threshold (5.0) far away.
MAX_SCORE = 0.5
SENT = datetime(2026, 5, 29, 11, 33, tzinfo=UTC)
SCORE = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+) ", re.M)
CONFIRM_LINK = re.compile(r"https?://\S+/confirm/\S+")
# A line of the report's table: " 0.7 HTML_FONT_LOW_CONTRAST BODY: ..."
RULE = re.compile(r"^ *(-?\d+\.\d) ([A-Z0-9_]+) ", re.M)


def spam_report(raw: bytes, home) -> tuple[float, dict[str, float]]:
    """SpamAssassin's score of the message (local rules only) and the points of each rule hit."""
    result = subprocess.run(
        [SPAMASSASSIN, "-L", "-t"],
        input=raw,
        capture_output=True,
        timeout=300,
        # Its own home: no user preferences or Bayes database from the machine.
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=True,
    )
    output = result.stdout.decode("utf-8", "replace")
    found = SCORE.search(output)
    assert found, output[-2000:]
    table = output[output.index("Content analysis details") :]
    return float(found.group(1)), {name: float(pts) for pts, name in RULE.findall(table)}


def spam_reports(messages: dict[str, bytes], home) -> dict[str, tuple[float, dict[str, float]]]:
    """Each message's report; a few at once (each run is mostly Perl starting up)."""
    with ThreadPoolExecutor(3) as pool:
        reports = pool.map(lambda raw: spam_report(raw, home), messages.values())
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


def full() -> DayDigest:
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


def test_every_email_we_send_scores_at_most_half_a_point(app, client, outbox, tmp_path):
    messages = account_emails(client, outbox)
    for name, (raw, html_size) in digests().items():
        messages[name] = raw
        if name.endswith("overflow"):
            # Past the size budget: the digest is the one cut to fit.
            assert html_size > HTML_BUDGET * 0.9, (name, html_size)
    reports = spam_reports(messages, tmp_path)
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
def test_an_abstract_of_long_words_still_scores_longwords(tmp_path):
    reader = full_day_readers()["full-019"]
    raw, _ = digest_bytes(full(), reader, "full-019")
    score, rules = spam_report(raw, tmp_path)
    assert "LONGWORDS" not in rules and score <= MAX_SCORE, (score, rules)
