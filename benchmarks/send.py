"""Send 10,000 digests to a local aiosmtpd sink: the real send path beside bare smtplib.

    python benchmarks/send.py [--messages 10000] [--chunk 500]

Setup (not timed): a SQLite database in a temporary folder holding the demo
day (2026-05-29, 66 papers) and N confirmed subscribers with the sample's two
keywords, each with a queued delivery row whose sections are fixed, as
dispatch leaves them. Every digest is the full 66-paper digest (~95 KB of
HTML), so the messages are digest-sized and share one render per chunk.

Timed, each in its own child process (so each has its own peak memory), against
the same sink (aiosmtpd in a third process, counting and discarding):
- `bare smtplib` (the baseline, this machine's limit): one connection, a loop
  of `sendmail` over pre-serialized personalized digests (100 distinct ones,
  cycled, so the loop holds no 1.5 GB of messages);
- `real send path`: `worker.sending.send_digest_chunk` over the rows in chunks
  of 500, i.e. per message an atomic claim + commit, the shared render
  personalized with the subscriber's signed links, the MIME message built,
  SMTP, then marked sent + commit;
- the same once more on a fresh database with SQLite's `synchronous=NORMAL`
  (the app's default is SQLite's FULL: an fsync per commit, two per message),
  to show what the commits cost.
"""

import argparse
import json
import multiprocessing
import resource
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = ["reinforcement learning", "diffusion policy"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sink(port: int, count, size, ready) -> None:
    """A counting SMTP sink (child process)."""
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):
            with count.get_lock():
                count.value += 1
            with size.get_lock():
                size.value += len(envelope.original_content)
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def make_config(folder: Path, port: int, name: str = "send") -> dict:
    return {
        "SECRET_KEY": "benchmark-secret",
        "DATABASE_URL": f"sqlite:///{folder / (name + '.sqlite3')}",
        "REDIS_URL": None,
        "BASE_URL": "https://digest.example.org",
        "MAIL_FROM": "arXiv digest <digest@digest.example.org>",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "SMTP_SECURITY": "none",
        "OUTBOX_DIR": str(folder / "outbox"),
        "LOG_LEVEL": "WARNING",
    }


def setup(config: dict, messages: int) -> None:
    """The database as dispatch leaves it: N queued deliveries of the demo day."""
    from sqlalchemy import insert

    from newsletter import create_app, db
    from newsletter.db import utcnow
    from newsletter.models import (
        Base,
        Delivery,
        DeliveryStatus,
        Keyword,
        Subscriber,
        SubscriberStatus,
    )
    from worker.delivery import compute_sections, unique_paper_count
    from worker.demo import load_demo
    from worker.digest import load_day
    from worker.mail import new_message_id

    app = create_app(config)
    with app.app_context():
        Base.metadata.create_all(db.engine())
        session = db.session()
        listing_date = load_demo(session)
        session.commit()
        now = utcnow()
        subscribers = [
            dict(
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
            for n in range(messages)
        ]
        session.execute(insert(Subscriber), subscribers)
        ids = list(session.scalars(Subscriber.__table__.select().with_only_columns(Subscriber.id)))
        keywords = [
            dict(subscriber_id=i, position=p, text=k) for i in ids for p, k in enumerate(KEYWORDS)
        ]
        session.execute(insert(Keyword), keywords)
        first = session.get(Subscriber, ids[0])
        sections = compute_sections([first], load_day(session, listing_date))[first.id]
        deliveries = [
            dict(
                subscriber_id=i,
                listing_date=listing_date,
                status=DeliveryStatus.QUEUED,
                message_id=new_message_id(config["MAIL_FROM"]),
                sections=[list(s) for s in sections],
                paper_count=unique_paper_count(sections),
                attempts=0,
                created_at=now,
            )
            for i in ids
        ]
        session.execute(insert(Delivery), deliveries)
        session.commit()


def phase_bare(config: dict, messages: int) -> dict:
    """Baseline: pre-serialized digests through one smtplib connection."""
    from sqlalchemy import select

    from newsletter import create_app, db
    from newsletter.models import Delivery, Subscriber
    from worker.sending import DigestRenderer

    app = create_app(config)
    with app.app_context():
        session = db.session()
        query = select(Delivery, Subscriber).join(Subscriber).order_by(Delivery.id).limit(100)
        rows = session.execute(query).all()
        renderer = DigestRenderer(session, app.config, rows[0][0].listing_date)
        prepared = [
            (subscriber.email, renderer.message(delivery, subscriber).as_bytes())
            for delivery, subscriber in rows
        ]
    started = time.perf_counter()
    smtp = smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"])
    for n in range(messages):
        to, raw = prepared[n % len(prepared)]
        smtp.sendmail("digest@digest.example.org", [to], raw)
    smtp.quit()
    return {"seconds": time.perf_counter() - started, "sent": messages}


def phase_real(config: dict, messages: int, chunk: int, synchronous: str | None = None) -> dict:
    """The real path: send_digest_chunk over every queued row, chunk by chunk."""
    from sqlalchemy import event, func, select

    from newsletter import create_app, db
    from newsletter.models import Delivery, DeliveryStatus
    from worker.delivery import chunk_ids
    from worker.sending import send_digest_chunk

    app = create_app({**config, "DIGEST_CHUNK_SIZE": chunk})
    with app.app_context():
        if synchronous:

            def pragma(connection, _record):
                connection.execute(f"PRAGMA synchronous = {synchronous}")

            event.listen(db.engine(), "connect", pragma)
        session = db.session()
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
        listing_date = session.scalar(select(Delivery.listing_date).limit(1))
        session.commit()
        started = time.perf_counter()
        sent = 0
        for _job_id, chunk_of_ids in chunk_ids(listing_date, ids, chunk):
            sent += send_digest_chunk(listing_date.isoformat(), chunk_of_ids).sent
        seconds = time.perf_counter() - started
        marked = session.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.SENT))
    return {"seconds": seconds, "sent": sent, "marked_sent": marked}


def child(args) -> None:
    config = json.loads(args.config)
    if args.phase == "setup":
        setup(config, args.messages)
        result = {}
    elif args.phase == "bare":
        result = phase_bare(config, args.messages)
    elif args.phase == "real":
        result = phase_real(config, args.messages, args.chunk)
    else:
        result = phase_real(config, args.messages, args.chunk, synchronous="NORMAL")
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
            "--chunk",
            str(args.chunk),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=500)
    phases = ["setup", "bare", "real", "real-normal"]
    parser.add_argument("--phase", choices=phases, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return

    port = free_port()
    count, size = multiprocessing.Value("q", 0), multiprocessing.Value("q", 0)
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=run_sink, args=(port, count, size, ready), daemon=True)
    sink.start()
    ready.wait(30)
    with tempfile.TemporaryDirectory() as folder:
        config = make_config(Path(folder), port)
        started = time.perf_counter()
        run_child("setup", config, args)
        seconds = time.perf_counter() - started
        print(f"setup: {args.messages:,} subscribers + queued deliveries in {seconds:.1f} s")

        results = []
        for name, phase, database in [
            ("bare smtplib loop (baseline)", "bare", "send"),
            ("real send path (claim + build + send + mark)", "real", "send"),
            ("real send path, SQLite synchronous=NORMAL", "real-normal", "normal"),
        ]:
            phase_config = make_config(Path(folder), port, database)
            if database != "send":
                run_child("setup", phase_config, args)
            before_count, before_bytes = count.value, size.value
            result = run_child(phase, phase_config, args)
            received = count.value - before_count
            marked = result.get("marked_sent", received)
            assert received == result["sent"] == marked == args.messages, (received, result)
            results.append((name, result, (size.value - before_bytes) / received))
    sink.terminate()

    print(f"{'':50} {'msg/s':>7} {'seconds':>8} {'KB/msg':>7} {'peak RSS':>9}")
    for name, result, average in results:
        print(
            f"{name:50} {result['sent'] / result['seconds']:7.0f} {result['seconds']:8.1f} "
            f"{average / 1024:7.1f} {result['peak_rss_mb']:6.0f} MB"
        )
    bare_seconds = results[0][1]["seconds"]
    for name, result, _ in results[1:]:
        print(f"{name}: {bare_seconds / result['seconds']:.2f} x the bare loop's throughput")


if __name__ == "__main__":
    main()
