"""Dispatch and send N digests to Postfix's smtp-sink: the real drain beside bare smtplib.

    python benchmarks/send.py [--messages 10000] [--database-url URL] [--batch 100]

Setup (timed on its own): the demo day (2026-05-29, 66 papers) and N confirmed
subscribers with the sample's two keywords, in a SQLite file in a temporary
folder (or the PostgreSQL database named by --database-url, whose tables are
dropped and made again); then the first half of a real dispatch
(`worker.delivery.dispatch.make_deliveries`: keyset pages, one executemany INSERT per
page) makes the N delivery rows. Every digest is the full 66-paper digest
(~138 KB on the wire), personalized with each subscriber's signed links.

Timed, each in its own child process (its own CPU time and peak memory),
against the same sink (`/usr/sbin/smtp-sink` on a free loopback port):
- `bare smtplib` (the baseline, this machine's limit): one connection, a loop
  of `sendmail` over 100 of the very messages the real path makes (built by
  its `Sender.message`, then cycled);
- `real drain`: `worker.delivery.sending.drain_day` over every row, i.e. batches of
  DELIVERY_BATCH_SIZE claimed in one statement each, rendered by the day's
  DayDigest, serialized by worker/delivery/mime.py, sent over one connection, each
  row marked sent with one autocommit UPDATE.
Each prints msg/s, CPU ms per message (user + system, `resource.getrusage`)
and peak RSS; the drain checks that N rows end up sent.
"""

import argparse
import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = ["reinforcement learning", "diffusion policy"]
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(folder: Path, port: int, database_url: str | None, batch: int) -> dict:
    return {
        "SECRET_KEY": "benchmark-secret",
        "DATABASE_URL": database_url or f"sqlite:///{folder / 'send.sqlite3'}",
        "REDIS_URL": None,
        "BASE_URL": "https://digest.example.org",
        "MAIL_FROM": "arXiv digest <digest@digest.example.org>",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "SMTP_SECURITY": "none",
        "OUTBOX_DIR": str(folder / "outbox"),
        "DELIVERY_BATCH_SIZE": batch,
        "LOG_LEVEL": "WARNING",
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def setup(config: dict, messages: int) -> dict:
    """N subscribers of the demo day, then their delivery rows made by the real dispatch."""
    from sqlalchemy import insert, text

    from newsletter import create_app, db
    from newsletter.config import settings
    from newsletter.db import utcnow
    from newsletter.models import Base, Keyword, ListingDay, Subscriber, SubscriberStatus
    from worker.delivery.dispatch import DispatchSummary, make_deliveries
    from worker.demo.load import load_demo

    app = create_app(config)
    with app.app_context():
        engine = db.engine()
        Base.metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        Base.metadata.create_all(engine)
        session = db.session()
        listing_date = load_demo(session)
        session.commit()
        now = utcnow()
        for start in range(0, messages, 5000):
            numbers = range(start, min(messages, start + 5000))
            session.execute(
                insert(Subscriber),
                [
                    dict(
                        id=n + 1,
                        public_id=f"{n:032x}",
                        email=f"r{n}@example.com",
                        email_key=f"r{n}@example.com",
                        status=SubscriberStatus.CONFIRMED,
                        language="en",
                        timezone="UTC",
                        bounce_count=0,
                        include_replacements=False,
                        created_at=now,
                        updated_at=now,
                    )
                    for n in numbers
                ],
            )
            session.execute(
                insert(Keyword),
                [
                    dict(subscriber_id=n + 1, position=p, text=k)
                    for n in numbers
                    for p, k in enumerate(KEYWORDS)
                ],
            )
        session.commit()
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT setval('subscribers_id_seq', :n)"), {"n": messages})
            session.execute(text("ANALYZE"))
            session.commit()
        day = session.get(ListingDay, listing_date)
        summary = DispatchSummary(listing_date)
        started, cpu = time.perf_counter(), cpu_seconds()
        make_deliveries(settings(), session, day, utcnow(), None, summary)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        assert summary.queued == messages, summary
    return {"dispatch_seconds": seconds, "dispatch_cpu_ms_per_row": cpu * 1000 / messages}


def prepared_messages(config: dict, count: int) -> list[tuple[str, bytes]]:
    """`count` messages exactly as the drain builds them (claims read, nothing claimed)."""
    from datetime import date

    from sqlalchemy import select

    from newsletter import create_app, db
    from newsletter.config import settings
    from newsletter.models import Delivery
    from worker.delivery import ledger
    from worker.delivery.batch import Sender
    from worker.delivery.claims import claim_batch
    from worker.delivery.leases import LedgerConnection
    from worker.digest.day_cache import day_digest

    app = create_app(config)
    with app.app_context():
        engine = db.engine()
        listing_date: date = db.session().scalar(select(Delivery.listing_date).limit(1))
        connection = LedgerConnection(engine, 0)
        # Claimed for the build only, then given back: the drain phase finds them queued.
        claims = connection.run(
            lambda c: claim_batch(
                c, listing_date, "benchmark", size=count, lease=ledger.RETRY_CAP, max_attempts=9
            )
        )
        sender = Sender(
            settings(app), listing_date, day_digest(engine, settings(app), listing_date), None
        )
        messages = [(claim.email, sender.message(claim)) for claim in claims]
        connection.run(lambda c: ledger.release(c, [claim.id for claim in claims], "benchmark"))
        connection.close()
    return messages


def phase_bare(config: dict, messages: int) -> dict:
    """Baseline: the drain's own messages, pre-built, through one smtplib connection."""
    prepared = prepared_messages(config, 100)
    started, cpu = time.perf_counter(), cpu_seconds()
    smtp = smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"])
    for n in range(messages):
        to, raw = prepared[n % len(prepared)]
        smtp.sendmail("digest@digest.example.org", [to], raw)
    smtp.quit()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "sent": messages,
        "bytes": sum(len(raw) for _, raw in prepared) / len(prepared),
    }


def phase_drain(config: dict, messages: int) -> dict:
    """The real path: one drain of the day until nothing is claimable."""
    from sqlalchemy import func, select

    from newsletter import create_app, db
    from newsletter.models import Delivery, DeliveryStatus
    from worker.delivery.sending import drain_day

    app = create_app(config)
    with app.app_context():
        session = db.session()
        listing_date = session.scalar(select(Delivery.listing_date).limit(1))
        session.commit()
        started, cpu = time.perf_counter(), cpu_seconds()
        summary = drain_day(listing_date.isoformat())
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        marked = session.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.SENT))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "sent": summary.sent,
        "marked_sent": marked,
        "deferred": summary.deferred,
        "stopped": summary.stopped,
    }


def child(args) -> None:
    config = json.loads(args.config)
    if args.phase == "setup":
        result = setup(config, args.messages)
    elif args.phase == "bare":
        result = phase_bare(config, args.messages)
    else:
        result = phase_drain(config, args.messages)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(phase: str, config: dict, args) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--config",
            json.dumps(config),
            "--messages",
            str(args.messages),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100, help="DELIVERY_BATCH_SIZE")
    parser.add_argument("--database-url", help="a PostgreSQL database to use (its tables go)")
    parser.add_argument("--phase", choices=["setup", "bare", "drain"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return

    port = free_port()
    # smtp-sink: accept everything, discard it; 1000 = its connection backlog.
    command = [SMTP_SINK, f"127.0.0.1:{port}", "1000"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # it refuses to run as root
    sink = subprocess.Popen(command)
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as folder:
            config = make_config(Path(folder), port, args.database_url, args.batch)
            setup_result = run_child("setup", config, args)
            bare = run_child("bare", config, args)
            drain = run_child("drain", config, args)
    finally:
        sink.terminate()
        sink.wait(10)
    assert drain["sent"] == drain["marked_sent"] == args.messages, drain

    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{args.messages:,} digests, {database}, batches of {args.batch}, smtp-sink")
    print(
        f"dispatch (rows made): {setup_result['dispatch_seconds']:.1f} s, "
        f"{setup_result['dispatch_cpu_ms_per_row']:.2f} ms CPU per row, "
        f"peak RSS {setup_result['peak_rss_mb']:.0f} MB"
    )
    print(f"{'':28} {'msg/s':>7} {'seconds':>8} {'CPU ms/msg':>11} {'peak RSS':>9}")
    for name, result in (("bare smtplib loop", bare), ("real drain (one worker)", drain)):
        print(
            f"{name:28} {result['sent'] / result['seconds']:7.0f} {result['seconds']:8.1f} "
            f"{result['cpu_seconds'] * 1000 / result['sent']:11.2f} "
            f"{result['peak_rss_mb']:6.0f} MB"
        )
    print(f"message size: {bare['bytes'] / 1024:.0f} KB")
    print(f"real drain: {bare['seconds'] / drain['seconds']:.0%} of the bare loop's throughput")


if __name__ == "__main__":
    main()
