"""The bounce mailbox over IMAP: fetch each unseen report, apply it, flag it seen.

Called by the `poll_bounces` job (worker/jobs.py), which the scheduler's poll
queues when BOUNCE_IMAP_URL is set, and by `newsletter bounces poll`.

Messages are fetched with BODY.PEEK[] (not marked read by the fetch) and
flagged \\Seen only after their effect is committed, so a poll that dies
half-way leaves the rest unseen for the next one; one read twice counts once
(worker/bounces/effects.py). Nothing is deleted: a report we could not read is
also flagged \\Flagged, for a person to look at in a mail client.
"""

import imaplib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from worker.bounces.effects import apply_report
from worker.bounces.parse import Kind, Report, parse_report

log = logging.getLogger(__name__)

SEEN = r"(\Seen)"
SEEN_AND_FLAGGED = r"(\Seen \Flagged)"


@dataclass(frozen=True)
class MailboxUrl:
    """imaps://user:password@host:993/INBOX, read once."""

    tls: bool
    host: str
    port: int
    user: str
    password: str
    mailbox: str


def parse_mailbox_url(url: str) -> MailboxUrl:
    """The parts of a BOUNCE_IMAP_URL; ValueError if it is not imap:// or imaps:// with a user."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError("must start with imaps:// (or imap:// for a server on this machine)")
    if not parts.hostname or not parts.username:
        raise ValueError("must name a user and a host: imaps://user:password@host/INBOX")
    tls = parts.scheme == "imaps"
    return MailboxUrl(
        tls=tls,
        host=parts.hostname,
        port=parts.port or (993 if tls else 143),
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
    )


def read_mailbox(url: str, handle: Callable[[bytes], Kind], timeout: float = 30) -> int:
    """Give each unseen message to `handle`, then flag it; the number of messages read.

    An exception from `handle` (the database went away) ends the poll with the
    message still unseen.
    """
    where = parse_mailbox_url(url)
    client_class = imaplib.IMAP4_SSL if where.tls else imaplib.IMAP4
    read = 0
    client = client_class(where.host, where.port, timeout=timeout)
    try:
        client.login(where.user, where.password)
        _check(client.select(_quoted(where.mailbox)), "SELECT")
        uids = _check(client.uid("SEARCH", "UNSEEN"), "SEARCH")[0].split()
        for uid in uids:
            raw = _fetched_body(_check(client.uid("FETCH", uid, "(BODY.PEEK[])"), "FETCH"))
            if raw is None:
                continue  # expunged by someone else meanwhile
            kind = handle(raw)
            read += 1
            flags = SEEN_AND_FLAGGED if kind is Kind.UNKNOWN else SEEN
            _check(client.uid("STORE", uid, "+FLAGS", flags), "STORE")
        client.close()
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return read


def process_mailbox(session: Session, url: str, bounce_limit: int) -> dict[str, int]:
    """Apply every unseen report in the mailbox at `url`, one commit each; counts by outcome."""
    outcomes: Counter[str] = Counter()

    def handle(raw: bytes) -> Kind:
        report = read_report(raw)
        outcome = apply_report(session, report, bounce_limit)
        session.commit()
        if report.kind is Kind.UNKNOWN:
            log.warning("bounce mailbox: a message we could not read (%s)", report.detail)
        outcomes[outcome] += 1
        return report.kind

    read_mailbox(url, handle)
    return dict(outcomes)


def read_report(raw: bytes) -> Report:
    """`parse_report`, with a message that breaks the parser kept as unknown, not retried forever."""
    try:
        return parse_report(raw)
    except Exception as error:  # a malformed message must not block the mailbox
        log.exception("bounce mailbox: a message the parser could not take")
        return Report(Kind.UNKNOWN, detail=f"parser error: {error}")


def _check(answer: tuple[str, list], command: str) -> list:
    status, data = answer
    if status != "OK":
        raise imaplib.IMAP4.error(f"{command} failed: {data!r}")
    return data


def _fetched_body(data: list) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return item[1]
    return None


def _quoted(mailbox: str) -> str:
    """A mailbox name as an IMAP quoted string (imaplib sends it as given)."""
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
