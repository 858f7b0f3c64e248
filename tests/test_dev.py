"""`newsletter dev` as a newcomer runs it: the real process on a fresh instance
folder, then the README's commands in the same environment (no settings
exported), the dev outbox in the real browser (Debian's Chromium), and the
dev scheduler's log. Also: production settings never fall into the dev
instance, `--help` never errors, /favicon.ico is served."""

import os
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import requests
from conftest import DATA, free_port

# Settings a newcomer's shell does not have; the README's first command runs without them.
UNSET = (
    "SECRET_KEY",
    "DATABASE_URL",
    "NEWSLETTER_DEV",
    "REDIS_URL",
    "SMTP_HOST",
    "BASE_URL",
    "TRANSLATION_BACKEND",
    "NEWSLETTER_INSTANCE_PATH",
)
# The dev scheduler's dispatch round (15 s by default) every half second here: a
# digest goes out within a round of its reader's import, and the tests wait for it.
DISPATCH_SECONDS = 0.5
SUBSCRIBERS = (
    "email,keywords,language,timezone\n"
    'alice@example.org,"reinforcement learning\ndiffusion policy",en+zh,Asia/Shanghai\n'
)


def newcomer_env(instance: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["NEWSLETTER_INSTANCE_PATH"] = str(instance)
    env.update(settings)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "newsletter.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class DevProcess:
    """`newsletter dev` on a free port, its console captured in a file."""

    def __init__(self, instance: Path, *options: str, **settings: str):
        self.instance = instance
        self.env = newcomer_env(instance, DEV_DISPATCH_SECONDS=str(DISPATCH_SECONDS), **settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = instance.parent / f"dev-{self.port}.log"
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli", "dev", "--port", str(self.port), *options],
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(self.url + "/", timeout=2)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"newsletter dev did not start:\n{self.log()}")
                time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log_file.close()


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    instance = tmp_path_factory.mktemp("walk") / "instance"
    process = DevProcess(instance)
    yield process
    process.stop()


def wait_for_digest(instance: Path, to: str, timeout: float = 60) -> Path:
    """The outbox file of `to`'s digest, once the dev scheduler has sent it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted((instance / "outbox").glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if message["To"] == to and "Confirm" not in message["Subject"]:
                return path
        time.sleep(0.1)
    pytest.fail(f"no digest for {to} in the outbox within {timeout} s")


def test_every_readme_command_works_right_after_newsletter_dev(dev, tmp_path):
    csv = tmp_path / "subscribers.csv"
    csv.write_text(SUBSCRIBERS)
    commands = [
        ["--help"],
        ["digest", "--help"],
        ["db", "upgrade"],
        ["subscribers", "import", str(csv), "--confirmed"],
        ["status"],
        ["status", "--date", "2026-05-29"],
        ["digest", "preview", "alice@example.org", "--date", "2026-05-29"],
        ["digest", "preview", "alice@example.org", "--date", "2026-05-29", "--html"],
        ["translate", "--date", "2026-05-29"],
        ["digest", "send", "--date", "2026-05-29"],
        ["ingest", "--file", str(DATA / "rss_all-archives_2024-11-28.xml")],
    ]
    outputs = {}
    for args in commands:
        result = cli(dev.env, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "Error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        outputs[" ".join(args)] = result.stdout
    status = outputs["status"]
    assert "instance: dev" in status and str(dev.instance) in status
    # The demo day has no feed fetch: its count comes from the papers stored.
    assert (
        "2026-05-29 complete" in status
        and "66 items (66 new, 0 cross, 0 replace, 0 replace-cross) stored" in status
    )
    assert "deliveries 2026-05-29:" in status
    assert "Subject:" in outputs["digest preview alice@example.org --date 2026-05-29"]


def test_the_dev_console_is_quiet_offline(dev, tmp_path):
    """No arXiv poll without --live, and no dispatch line while there is nothing to send."""
    csv = tmp_path / "bob.csv"
    csv.write_text("email,keywords,language,timezone\nbob@example.org,diffusion policy,en,UTC\n")
    assert cli(dev.env, "subscribers", "import", str(csv), "--confirmed").returncode == 0
    wait_for_digest(dev.instance, "bob@example.org")
    # Rounds with nothing left to do: a round that found nothing prints nothing, so
    # no line can be awaited; the wait spans 6 rounds (one is what the check needs).
    time.sleep(6 * DISPATCH_SECONDS)
    log = dev.log()
    assert "arXiv is not polled" in log
    for noise in ("arxiv.org", "ConnectionError", "retrying in", "Traceback", " 0 queued"):
        assert noise not in log, log
    assert "dispatch 2026-05-29: 1 queued" in log


def test_the_outbox_fits_the_screen_and_wraps_the_text_part_once(dev, tmp_path, browser):
    csv = tmp_path / "carol.csv"
    csv.write_text(SUBSCRIBERS.replace("alice", "carol"))
    assert cli(dev.env, "subscribers", "import", str(csv), "--confirmed").returncode == 0
    name = wait_for_digest(dev.instance, "carol@example.org").name
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 800})
        for path in ("/dev/outbox/", f"/dev/outbox/{name}", "/check-email"):
            page.goto(dev.url + path)
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert scroll <= client, (path, width, scroll, client)
        page.goto(f"{dev.url}/dev/outbox/{name}")
        # One rendered line per line of the text part: the email's own wrapping, once.
        lines, rendered = page.evaluate(
            """() => {
                const pre = document.querySelector('pre.text-part');
                const style = getComputedStyle(pre);
                const inner = pre.clientHeight - parseFloat(style.paddingTop)
                    - parseFloat(style.paddingBottom);
                return [pre.textContent.split('\\n').length,
                        Math.round(inner / parseFloat(style.lineHeight))];
            }"""
        )
        # (Rounding of the line height leaves a line or two over a thousand.)
        assert lines - 2 <= rendered <= lines * 1.005 + 2, (width, lines, rendered)
        page.close()
    page = browser.new_page()
    page.goto(dev.url + "/check-email")
    page.click("text=dev outbox")
    assert page.url == dev.url + "/dev/outbox/"


def test_a_failed_live_poll_is_one_line(tmp_path):
    closed = free_port()  # nothing listens here: every arXiv request is refused
    process = DevProcess(
        tmp_path / "instance",
        "--live",
        ARXIV_RSS_URL=f"http://127.0.0.1:{closed}/rss/",
        ARXIV_RETRIES="3",
        ARXIV_BACKOFF="0.05",
        ARXIV_MIN_INTERVAL="0",
    )
    try:
        deadline = time.monotonic() + 60
        while "arXiv poll" not in process.log() and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        process.stop()
    log = process.log()
    poll_lines = [line for line in log.splitlines() if "arXiv" in line and "poll" in line]
    assert len([line for line in poll_lines if "WARNING" in line]) == 1, log
    assert "ConnectionError" in log  # the cause, named once
    for noise in ("retrying in", "Traceback", "ERROR"):
        assert noise not in log, log


def test_production_settings_never_use_the_dev_instance(dev):
    production = dict(dev.env, SECRET_KEY="a-production-secret")
    result = cli(production, "status")
    assert result.returncode == 0, result.stderr
    assert "instance: production" in result.stdout
    assert "BASE_URL" in result.stdout  # the http warning of production, not silenced as dev
    elsewhere = dict(dev.env, DATABASE_URL=f"sqlite:///{dev.instance / 'other.sqlite3'}")
    result = cli(elsewhere, "status")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["digest", "--help"], ["subscribers", "--help"]])
def test_help_never_prints_an_error(tmp_path, args):
    """No settings and no dev instance: help still lists the commands, with nothing on stderr."""
    result = cli(newcomer_env(tmp_path / "empty"), *args)
    assert result.returncode == 0
    assert result.stderr == ""
    assert "Usage:" in result.stdout


def test_non_listing_dates_are_named_with_the_nearest_listing_dates(dev):
    for args in (
        ["digest", "preview", "alice@example.org", "--date", "2026-05-30"],
        ["digest", "send", "--date", "2026-05-30"],
        ["translate", "--date", "2026-05-30"],
    ):
        result = cli(dev.env, *args)
        assert result.returncode == 1
        assert "arXiv lists nothing on Saturday 2026-05-30 (a weekend)" in result.stderr
        assert "Fri 2026-05-29 and Mon 2026-06-01" in result.stderr
        assert "not completely ingested" not in result.stderr


@pytest.mark.parametrize("dev_mode", [True, False])
def test_the_favicon_is_served(config, database_url, dev_mode):
    from conftest import empty_tables

    from newsletter import create_app

    empty_tables(database_url)
    app = create_app({**config, "DEV": dev_mode})
    try:
        response = app.test_client().get("/favicon.ico")
        assert response.status_code == 200
        assert response.mimetype == "image/x-icon"
        assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO header
        assert response.cache_control.max_age >= 3600
        response.close()
    finally:
        app.extensions["db_engine"].dispose()


def test_an_unknown_command_is_named_not_a_settings_error(tmp_path):
    result = cli(newcomer_env(tmp_path / "empty"), "nosuch")
    assert result.returncode == 2
    assert "No such command 'nosuch'" in result.stderr
    assert "SECRET_KEY" not in result.stderr
