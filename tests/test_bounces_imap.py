"""The bounce mailbox end to end: a real Dovecot IMAP server on 127.0.0.1, recorded
reports delivered into it with APPEND, read by `newsletter bounces poll` and by the
scheduler's poll, their effects checked in the database and their flags in the mailbox.

Dovecot (Debian's dovecot-imapd, installed by .ci/run) runs from a config
written here: a free port, a passwd-file user, a maildir in a temporary folder,
no TLS. Its login and mail processes never run as root: started by root they
take Debian's dovecot/dovenull users, otherwise the user running the tests.
"""

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import free_port
from test_bounces import bare, make_delivery, make_subscriber, rewrite, sample
from test_schedule import feed_server  # noqa: F401 (a fixture)

from newsletter import db, replace_settings
from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.config_parsers import ConfigError
from newsletter.models import SubscriberStatus
from worker.bounces import effects
from worker.bounces.mailbox import MailboxUrl, parse_mailbox_url
from worker.schedule import poll

USER, PASSWORD = "bounces", "imap-password-for-tests"

CONFIG = """\
base_dir = {home}/run
state_dir = {home}/state
log_path = {home}/dovecot.log
instance_name = newsletter-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{home}/mail/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {home}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/mail
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  chroot =
}}
"""


def dovecot_users() -> dict[str, str | int]:
    """Who Dovecot's processes run as: never root (its login process refuses to)."""
    if os.geteuid() != 0:
        me, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
        return dict(
            internal_user=me,
            internal_group=group,
            login_user=me,
            uid=os.geteuid(),
            gid=os.getegid(),
        )
    internal = pwd.getpwnam("dovecot")
    return dict(
        internal_user="dovecot",
        internal_group=grp.getgrgid(internal.pw_gid).gr_name,
        login_user="dovenull",
        uid=internal.pw_uid,
        gid=internal.pw_gid,
    )


@pytest.fixture
def imap_server():
    """A private Dovecot; yields its imap:// URL (the user's INBOX)."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(binary):
        pytest.fail("dovecot is not installed: apt-get install dovecot-imapd (see .ci/run)")
    # Not under pytest's tmp_path: its 0700 parents would shut out the mail user.
    home = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    home.chmod(0o755)
    users = dovecot_users()
    port = free_port()
    for folder in ("run", "state", "mail"):
        (home / folder).mkdir()
    os.chown(home / "mail", users["uid"], users["gid"])
    (home / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (home / "dovecot.conf").write_text(CONFIG.format(home=home, port=port, **users))
    with open(home / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(
            [binary, "-F", "-c", str(home / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_port(port, process, home)
        yield f"imap://{USER}:{PASSWORD}@127.0.0.1:{port}/INBOX"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def wait_for_port(port: int, process: subprocess.Popen, home: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            logs = [
                (home / name).read_text()
                for name in ("stderr.log", "dovecot.log")
                if (home / name).exists()
            ]
            pytest.fail(f"dovecot stopped: {' '.join(logs)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("dovecot did not listen within 10 s")


class Mailbox:
    """The test's own IMAP connection: deliver reports, read flags back."""

    def __init__(self, url: str):
        self.url = url
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        self.client.login(USER, PASSWORD)
        self.client.select("INBOX")

    def deliver(self, raw: bytes) -> None:
        status, _ = self.client.append("INBOX", None, None, raw)
        assert status == "OK"

    def flags(self) -> list[set[str]]:
        """Each message's flags, in order, as a fresh session sees them."""
        reader = Mailbox(self.url)
        status, data = reader.client.fetch("1:*", "(FLAGS)")
        reader.close()
        assert status == "OK"
        return [
            {flag.decode() for flag in imaplib.ParseFlags(line)} - {"\\Recent"}
            for line in data
            if line
        ]

    def close(self) -> None:
        self.client.logout()


@pytest.fixture
def mailbox(imap_server, config):
    config["BOUNCE_IMAP_URL"] = imap_server
    box = Mailbox(imap_server)
    yield box
    box.close()


def poll_command(app) -> str:
    result = app.test_cli_runner().invoke(main, ["bounces", "poll"])
    assert result.exit_code == 0, result.output
    return result.output


def hard_bounce_for(delivery, address: str) -> bytes:
    return rewrite(
        sample("lhost-postfix-03.eml"),
        {
            "20140701000000.000000000000@e1.example.ne.jp": bare(delivery.message_id),
            "kijitora@example.net": address,
        },
    )


def complaint_for(delivery, address: str) -> bytes:
    return rewrite(
        sample("arf-02.eml"),
        {
            "000000000000000000000000.smtp@example.com": bare(delivery.message_id),
            "this-local-part-does-not-exist-on-yahoo@yahoo.com": address,
        },
    )


def test_the_poll_command_applies_each_report_once_and_flags_it_seen(mailbox, app):
    ada, bob = make_subscriber("ada@example.org"), make_subscriber("bob@example.org")
    ada_digest, bob_digest = make_delivery(ada), make_delivery(bob)
    mailbox.deliver(hard_bounce_for(ada_digest, "ada@example.org"))
    mailbox.deliver(hard_bounce_for(ada_digest, "ada@example.org"))  # the relay said it twice
    mailbox.deliver(complaint_for(bob_digest, "bob@example.org"))
    mailbox.deliver(sample("rfc3834-01.eml"))  # an out-of-office reply
    mailbox.deliver(sample("lhost-yahoo-01.eml"))  # a bounce we cannot read

    output = poll_command(app)

    assert output.splitlines() == sorted(
        [
            f"{effects.ALREADY_COUNTED}: 1",
            f"{effects.COUNTED}: 1",
            "none: 1",
            f"{effects.UNSUBSCRIBED}: 1",
            "unknown: 1",
        ]
    )
    db.session().expire_all()
    assert (ada.bounce_count, ada.status) == (1, SubscriberStatus.CONFIRMED)
    assert ada_digest.bounced_at is not None
    assert (bob.bounce_count, bob.status) == (0, SubscriberStatus.UNSUBSCRIBED)
    # Nothing deleted; the one we could not read is flagged for a person.
    assert mailbox.flags() == [
        {"\\Seen"},
        {"\\Seen"},
        {"\\Seen"},
        {"\\Seen"},
        {"\\Seen", "\\Flagged"},
    ]

    assert poll_command(app) == "no new reports\n"
    db.session().expire_all()
    assert ada.bounce_count == 1


def test_a_report_read_again_after_it_was_marked_unseen_counts_once(mailbox, app):
    ada = make_subscriber("ada@example.org")
    digest = make_delivery(ada)
    mailbox.deliver(hard_bounce_for(digest, "ada@example.org"))
    poll_command(app)
    # A person (or a crash before the flag was stored) leaves it unseen again.
    mailbox.client.store("1", "-FLAGS", "(\\Seen)")

    assert poll_command(app) == f"{effects.ALREADY_COUNTED}: 1\n"

    db.session().expire_all()
    assert ada.bounce_count == 1


def test_a_wrong_password_is_one_line_naming_the_setting(imap_server, config, app):
    replace_settings(app, BOUNCE_IMAP_URL=imap_server.replace(PASSWORD, "wrong"))

    result = app.test_cli_runner().invoke(main, ["bounces", "poll"])

    assert result.exit_code == 1
    assert "bounce mailbox (BOUNCE_IMAP_URL)" in result.output
    assert "Traceback" not in result.output


def test_the_poll_command_needs_the_setting(app):
    result = app.test_cli_runner().invoke(main, ["bounces", "poll"])

    assert result.exit_code == 1 and "BOUNCE_IMAP_URL is not set" in result.output


def test_the_scheduled_poll_reads_the_mailbox(feed_server, mailbox, app, outbox):  # noqa: F811
    ada = make_subscriber("ada@example.org")
    digest = make_delivery(ada)
    mailbox.deliver(hard_bounce_for(digest, "ada@example.org"))

    # Without Redis the poll runs its jobs in-process, poll_bounces among them.
    poll(datetime(2024, 11, 28, 15, 0, tzinfo=UTC))

    db.session().expire_all()
    assert ada.bounce_count == 1 and digest.bounced_at is not None
    assert mailbox.flags() == [{"\\Seen"}]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "imaps://bounces%40example.org:p%2Fss@imap.example.org/INBOX",
            MailboxUrl(True, "imap.example.org", 993, "bounces@example.org", "p/ss", "INBOX"),
        ),
        (
            "imap://u:p@127.0.0.1:1143/Bounces/DSN",
            MailboxUrl(False, "127.0.0.1", 1143, "u", "p", "Bounces/DSN"),
        ),
        ("imaps://u:p@host", MailboxUrl(True, "host", 993, "u", "p", "INBOX")),
    ],
)
def test_the_mailbox_url_names_server_user_and_folder(url, expected):
    assert parse_mailbox_url(url) == expected


@pytest.mark.parametrize("url", ["pop3://u:p@host/", "imaps://host/INBOX", "imaps:///INBOX"])
def test_a_mailbox_url_without_a_user_or_imap_is_refused(url):
    with pytest.raises(ValueError):
        parse_mailbox_url(url)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOUNCE_IMAP_URL", "https://mail.example.org/"),
        ("BOUNCE_IMAP_URL", "imaps://mail.example.org/INBOX"),  # no user
        ("SENDGRID_WEBHOOK_PUBLIC_KEY", "not base64!"),
    ],
)
def test_a_malformed_bounce_setting_stops_the_start(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({"SECRET_KEY": "s", name: value}, str(tmp_path), dev=False)


def test_the_bounce_settings_are_off_by_default(tmp_path):
    config = load_settings({"SECRET_KEY": "s"}, str(tmp_path), dev=False)

    assert (config.BOUNCE_IMAP_URL, config.SENDGRID_WEBHOOK_PUBLIC_KEY) == (None, None)
