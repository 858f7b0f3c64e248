"""The whole service at scale: N subscribers' digests of the real full day, end to end.

    python benchmarks/scale.py --subscribers 10000 [--timeout 2400]

Run by hand (as root, for `runuser`); issue 8's figures come from it. It starts
its own PostgreSQL (initdb in a temporary folder as the postgres user, with
pg_stat_statements; or uses BENCH_DATABASE_URL / TEST_DATABASE_URL, whose
tables it drops), its own redis-server and Postfix's /usr/sbin/smtp-sink on
free 127.0.0.1 ports, and drives the service only through its commands:

1. `newsletter db upgrade`; `newsletter subscribers import --confirmed` of N
   subscribers with 5 keyword lines each, drawn Zipf-like from 30,000 distinct
   phrases of the day (benchmarks/match.py's n-grams), 1% bilingual;
2. two `newsletter worker` processes, idle;
3. `newsletter ingest --file tests/data/rss_all-archives_2024-11-28.xml`, then at
   once `newsletter digest send --date 2024-11-28 --queue`, as a scheduler poll;
4. waits until every row is made and none is queued or sending.

Prints dispatch seconds, send msg/s, ingest done -> last digest accepted,
worker CPU ms per message (/proc/<pid>/stat), database round trips per message
(pg_stat_statements calls; with an outside database only transactions, from
pg_stat_database), render, MIME and GC CPU ms per digest as the workers
measured them in the drains (each drain's last log line: thread CPU of the
render_email calls, the MIME builds and the GC settled after each batch, over
the digests it rendered; summed over every drain of both workers, the day's
one-time fragment work included), peak RSS of every process (VmHWM, sampled),
and the baseline: a bare smtplib loop sending real messages to the same sink
over one connection. Those messages come from a secondary, in-process sample,
also printed: render and MIME CPU through the worker's own DayDigest and
DigestMime, a cold sample (the day's one-time work) then a disjoint warm one;
amortized = warm + one-time x 2 workers / N. "One worker / bare loop" is
given as the issue computed it ((2-worker msg/s / 2) / bare) and, with
--single-worker M, for one worker alone: M sent rows are queued again and a
fresh worker drains them. Exits non-zero unless the sink accepted exactly N
messages, N rows are sent and the drains' lines account for every sent digest.
It measures the digest modules as ROOT holds them, and says which build:
plain Python, or compiled in place first with
`NEWSLETTER_COMPILE=1 python setup.py build_ext --inplace` (setup.py).
Every process it started is stopped on success, failure, timeout or Ctrl-C.
"""

import argparse
import csv
import os
import random
import re
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from match import FEED, ngrams  # noqa: E402

LISTING_DATE = date(2024, 11, 28)
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SMTP_SINK = "/usr/sbin/smtp-sink"
TIMEZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Issue 8's figures for 100,000 subscribers on the code before it ("today"), its
# targets, and the key of this run's figure in `run`'s result (a prefix).
ISSUE_TABLE = [
    ("ingest done -> last digest accepted, s", "~1,920 (~32 min)", "<= 600", "ingest done"),
    ("send msg/s (2 workers)", "53.5", "", "send msg/s"),
    ("worker CPU ms per message", "27.9", "<= 4", "worker CPU ms per message"),
    ("database round trips per message", "~5 + 3 commits", "<= 1", "database "),
    ("render ms per digest (the workers' drains)", "7-11", "<= 0.5", "render CPU ms per digest"),
    ("one worker / bare smtplib loop", "3% (26.7 vs 902)", ">= 25%", "one worker / bare loop"),
]


class BenchmarkFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- subscribers (pure) ---


def day_phrases(distinct: int, rng: random.Random) -> list[str]:
    """`distinct` keyword lines: the day's title then abstract 1-3-grams, shuffled.

    Only lines the form accepts and that find a new or cross-listed paper of
    the day, so every subscriber gets a digest and the sink must see N messages.
    """
    from collections import Counter

    from worker.arxiv.feeds import parse_feed
    from worker.digest.matching import KeywordError, parse_keyword
    from worker.digest.selection import match_papers

    items = parse_feed(FEED.read_bytes()).items
    titles, abstracts = Counter(), Counter()
    for item in items:
        ngrams(item.title, titles)
        ngrams(item.abstract, abstracts)
    ordered = [g for g, _ in titles.most_common()]
    ordered += [g for g, _ in abstracts.most_common() if g not in titles]
    candidates: list[str] = []
    for line in ordered[: distinct * 2]:
        try:
            parse_keyword(line)
        except KeywordError:
            continue
        if len(line) <= 100:
            candidates.append(line)
    listed = [item for item in items if item.announce_type in ("new", "cross")]
    matched = match_papers(listed, candidates)
    phrases = [line for line in candidates if matched.get(line)][:distinct]
    if len(phrases) < distinct:
        raise BenchmarkFailed(f"the day has only {len(phrases)} usable phrases")
    # Popularity among subscribers is not the day's frequency: shuffle, then Zipf by rank.
    return rng.sample(phrases, len(phrases))


def subscriber_rows(count: int, phrases: list[str], rng: random.Random):
    """CSV rows: 5 distinct lines each (Zipf-like), 1% bilingual, four time zones."""
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(phrases))]
    for n in range(count):
        lines: dict[str, None] = {}
        while len(lines) < 5:
            for line in rng.choices(phrases, weights, k=5 - len(lines)):
                lines.setdefault(line)
        language = "en+zh" if n % 100 == 0 else "en"
        yield [f"reader{n}@bench.example.org", "\n".join(lines), language, TIMEZONES[n % 4]]


# --- processes ---


class Sampler(threading.Thread):
    """Samples VmHWM (peak RSS) of watched processes, and of a parent's children."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pids: dict[int, str] = {}
        self.parents: dict[int, str] = {}
        self.peak_kb: dict[str, int] = {}
        self.stop = threading.Event()

    def watch(self, label: str, pid: int) -> None:
        self.pids[pid] = label

    def run(self) -> None:
        # VmHWM is a high-water mark: a slow poll loses nothing of a process
        # that lives past it, and costs the measured processes less CPU.
        while not self.stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        for pid, label in list(self.pids.items()):
            self._read(label, pid)
        for parent, label in list(self.parents.items()):
            for pid in children(parent):
                self._read(label, pid)

    def _read(self, label: str, pid: int) -> None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        if found:
            self.peak_kb[label] = max(self.peak_kb.get(label, 0), int(found.group(1)))


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def load_average() -> str:
    """The 1-minute load average: other processes on this shared machine skew every figure."""
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Services:
    """The processes this run starts; `stop_all` ends each by its own id, newest first."""

    def __init__(self, folder: Path, sampler: Sampler):
        self.folder = folder
        self.sampler = sampler
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, label: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{label}.log", "wb")
        # Own session: a Ctrl-C reaches only this script, which stops them in order.
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        log.close()
        self.started.append((label, process))
        self.sampler.watch(label, process.pid)
        return process

    def stop(self, process: subprocess.Popen, grace: float = 10.0) -> None:
        if process.poll() is None:
            # Its peak RSS read last while it still runs (the sampler polls once a second).
            self.sampler.sample()
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def stop_all(self) -> None:
        for _label, process in reversed(self.started):
            self.stop(process)


def run_command(
    services: Services, label: str, args: list[str], env: dict, deadline: float
) -> tuple[float, str]:
    """Run a `newsletter` command to completion (sampled); return (seconds, its output)."""
    started = time.time()
    process = services.start(label, [sys.executable, "-m", "newsletter.cli", *args], env)
    try:
        process.wait(max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        raise BenchmarkFailed(f"`newsletter {' '.join(args)}` ran past the timeout") from None
    output = (services.folder / f"{label}.log").read_text(errors="replace")
    if process.returncode != 0:
        raise BenchmarkFailed(
            f"`newsletter {' '.join(args)}` exited {process.returncode}:\n{output[-2000:]}"
        )
    return time.time() - started, output


def start_postgres(folder: Path, stack: ExitStack, sampler: Sampler) -> str:
    """A private cluster with pg_stat_statements; return its database's URL."""
    if os.geteuid() != 0:
        raise BenchmarkFailed(
            "run as root (initdb runs as postgres via runuser), or set BENCH_DATABASE_URL"
        )
    data, port = folder / "pg", free_port()
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, PG_BIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c shared_preload_libraries=pg_stat_statements -c max_connections=60"
    )
    log = folder / "postgres.log"
    log.touch()
    shutil.chown(log, "postgres", "postgres")
    pg_ctl = [*as_postgres, PG_BIN / "pg_ctl", "-D", data]
    stack.callback(
        subprocess.run, [*pg_ctl, "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run(
        [*pg_ctl, "-l", log, "-o", options, "-w", "-t", "60", "start"],
        check=True, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    sampler.watch("postgres (postmaster)", postmaster)
    sampler.parents[postmaster] = "postgres (largest backend)"
    server = f"postgresql://postgres@127.0.0.1:{port}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute("CREATE DATABASE bench")
        connection.execute("CREATE ROLE bench_monitor LOGIN SUPERUSER")
    with psycopg.connect(f"{server}/bench", autocommit=True) as connection:
        connection.execute("CREATE EXTENSION pg_stat_statements")
    return f"{server}/bench"


def start_redis(services: Services, folder: Path) -> str:
    port = free_port()
    services.start(
        "redis",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
    )  # fmt: skip
    wait_for_port(port)
    return f"redis://127.0.0.1:{port}/0"


def start_sink(services: Services) -> tuple[int, Path]:
    """smtp-sink with counters (-c) on stdout, to a log we read the `mesg=` count from."""
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    services.start("smtp-sink", [SMTP_SINK, "-c", *user, f"127.0.0.1:{port}", "256"])
    wait_for_port(port)
    return port, services.folder / "smtp-sink.log"


def sink_count(log: Path) -> int:
    counts = re.findall(rb"mesg=(\d+)", log.read_bytes())
    return int(counts[-1]) if counts else 0


def wait_for_port(port: int, seconds: float = 20.0) -> None:
    until = time.time() + seconds
    while time.time() < until:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchmarkFailed(f"nothing listens on 127.0.0.1:{port}")


def reset_database(url: str) -> None:
    """An outside database: drop the service's tables (as tests/conftest.py does)."""
    from sqlalchemy import create_engine, text

    from newsletter.models import Base

    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


# --- measuring the database ---


class Monitor:
    """Reads the ledger and PostgreSQL's statistics on its own connection."""

    def __init__(self, url: str, own_cluster: bool):
        self.own_cluster = own_cluster
        user = "bench_monitor" if own_cluster else None
        self.connection = psycopg.connect(url, autocommit=True, **({"user": user} if user else {}))
        self.queries = 0

    def one(self, sql: str, *params):
        self.queries += 1
        return self.connection.execute(sql, params).fetchone()

    def rows_made(self) -> int:
        return self.one("SELECT count(*) FROM deliveries WHERE listing_date = %s", LISTING_DATE)[0]

    def unfinished(self) -> bool:
        """Whether any row of the day is queued or being sent (an index probe, not a count)."""
        return bool(
            self.one(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE listing_date = %s "
                "AND status IN ('queued', 'sending'))",
                LISTING_DATE,
            )[0]
        )

    def statuses(self) -> dict[str, int]:
        self.queries += 1
        rows = self.connection.execute(
            "SELECT status, count(*) FROM deliveries WHERE listing_date = %s GROUP BY status",
            (LISTING_DATE,),
        ).fetchall()
        return dict(rows)

    def reset_statements(self) -> None:
        if self.own_cluster:
            self.one("SELECT pg_stat_statements_reset()")
        self.queries = 0
        self.transactions_before = self._transactions()

    def _transactions(self) -> int:
        return self.one(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )[0]

    def round_trips(self) -> tuple[str, int, list]:
        """(what was counted, how many, the statements called most) since reset_statements."""
        if self.own_cluster:
            where = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND userid = 'postgres'::regrole"
            total = self.one(
                f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE {where}"
            )[0]
            top = self.connection.execute(
                f"SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
                f"FROM pg_stat_statements WHERE {where} ORDER BY calls DESC LIMIT 8"
            ).fetchall()
            return "statements (pg_stat_statements calls)", int(total), top
        # pg_stat_database lags by up to its flush interval; our own queries are one transaction each.
        time.sleep(1.5)
        total = self._transactions() - self.transactions_before - self.queries - 1
        return "transactions (pg_stat_database; no pg_stat_statements)", total, []


# --- in-process: render, MIME, bare smtplib ---


def sample_messages(env: dict, sample: int, subscribers: int, workers: int) -> dict:
    """Render and serialize two disjoint samples of the ledger's digests as a worker does.

    In this fresh process, with the worker's own DayDigest and DigestMime: the
    first (cold) sample pays the day's one-time work (fragments, encodings);
    the second, other readers, shows the warm cost per digest. The one-time
    cost is what the cold sample took beyond the warm rate, paid once per
    worker process, so amortized = warm + one-time x workers / subscribers.
    CPU time of this process (time.process_time). Also returns the second
    sample's [(recipient, bytes)] for the bare loop.
    """
    from sqlalchemy import func, select

    from newsletter import create_app, db
    from newsletter.config import settings
    from newsletter.models import Delivery, DeliveryStatus, Subscriber
    from newsletter.tokens import subscriber_links
    from worker.delivery import mime
    from worker.delivery.collector import settled_heap
    from worker.digest import core as digest

    os.environ.update(env)
    app = create_app()
    with app.app_context():
        session = db.session()
        config = settings(app)
        sent = select(Delivery.id).where(
            Delivery.listing_date == LISTING_DATE, Delivery.status == DeliveryStatus.SENT
        )
        total = session.scalar(select(func.count()).select_from(sent.subquery()))
        step = max(2, total // sample)
        ids = list(session.scalars(sent.order_by(Delivery.id)))
        samples = [ids[::step][:sample], ids[step // 2 :: step][:sample]]
        day = digest.DayDigest.load(session, config, LISTING_DATE)
        builder = mime.DigestMime(config, mime.SegmentCache())
        timings, messages = [], []
        with settled_heap() as settle:
            for chosen in samples:
                rows = session.execute(
                    select(Delivery, Subscriber).join(Subscriber).where(Delivery.id.in_(chosen))
                ).all()
                prepared = [
                    (
                        delivery,
                        subscriber,
                        digest.Reader.of(subscriber),
                        subscriber_links(config, subscriber.public_id, LISTING_DATE),
                        [tuple(section) for section in delivery.sections or []],
                    )
                    for delivery, subscriber in rows
                ]
                started = time.process_time()
                rendered = []
                for delivery, _, reader, links, sections in prepared:
                    minute = delivery.created_at.replace(second=0, microsecond=0)
                    rendered.append(day.render_email(reader, sections, minute, links))
                    if len(rendered) % config.DELIVERY_BATCH_SIZE == 0:
                        settle()  # as a worker's drain does after each batch
                render_seconds = time.process_time() - started
                started = time.process_time()
                messages = [
                    (
                        subscriber.email,
                        builder.build(
                            to=subscriber.email,
                            subject=email.subject,
                            text_segments=email.text_segments,
                            html_segments=email.html_segments,
                            message_id=delivery.message_id,
                            one_click_url=links["one_click_url"],
                            date=delivery.created_at,
                        ),
                    )
                    for (delivery, subscriber, _, links, _), email in zip(
                        prepared, rendered, strict=True
                    )
                ]
                mime_seconds = time.process_time() - started
                timings.append((len(prepared), render_seconds, mime_seconds))
    app.extensions["db_engine"].dispose()
    (cold_n, cold_render, cold_mime), (warm_n, warm_render, warm_mime) = timings
    figures = {}
    for name, cold, warm in (("render", cold_render, warm_render), ("MIME", cold_mime, warm_mime)):
        warm_ms = warm * 1000 / max(1, warm_n)
        one_time_ms = max(0.0, cold * 1000 - warm_ms * cold_n)
        figures[name] = {
            "cold": cold * 1000 / max(1, cold_n),
            "warm": warm_ms,
            "one-time": one_time_ms,
            "amortized": warm_ms + one_time_ms * workers / max(1, subscribers),
        }
    figures["sample"] = (cold_n, warm_n)
    return figures, messages


def drain_figures(logs: list[Path]) -> dict[str, float]:
    """Render, MIME and GC CPU ms per digest over every drain line of these workers' logs.

    Each drain logs its own figures per digest and its digest count
    (worker/delivery/summary.py's CPU_LINE); weighted by the counts, they add up
    to the workers' totals (each figure is rounded to 1 µs per digest).
    """
    from worker.delivery.summary import CPU_LINE

    totals = {"render": 0.0, "mime": 0.0, "gc": 0.0}
    digests = drains = 0
    for log in logs:
        for found in CPU_LINE.finditer(log.read_text(errors="replace")):
            count = int(found["digests"])
            for name in totals:
                totals[name] += float(found[name]) * count
            digests += count
            drains += 1
    per = {name: total / digests if digests else float("nan") for name, total in totals.items()}
    return {**per, "digests": digests, "drains": drains}


def bare_loop(port: int, sender: str, messages: list[tuple[str, bytes]]) -> float:
    """msg/s of plain smtplib.sendmail over one connection (the machine's limit)."""
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port)
    for recipient, raw in messages:
        smtp.sendmail(sender, [recipient], raw)
    smtp.quit()
    return len(messages) / (time.perf_counter() - started)


# --- the run ---


def run(args: argparse.Namespace, stack: ExitStack, folder: Path) -> dict:
    deadline = time.time() + args.timeout
    sampler = Sampler()
    sampler.start()
    stack.callback(sampler.stop.set)
    services = Services(folder, sampler)

    outside = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if outside:
        database = outside
        reset_database(database)
    else:
        database = start_postgres(folder, stack, sampler)
    # Registered after PostgreSQL's stop, so it runs before it: workers first.
    stack.callback(services.stop_all)
    raw_url = database.replace("postgresql+psycopg://", "postgresql://")
    app_url = raw_url.replace("postgresql://", "postgresql+psycopg://", 1)
    redis_url = start_redis(services, folder)
    sink_port, sink_log = start_sink(services)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")},
        "SECRET_KEY": "scale-benchmark-secret",
        "DATABASE_URL": app_url,
        "REDIS_URL": redis_url,
        "BASE_URL": "https://digest.example.org",
        "MAIL_FROM": "arXiv digest <digest@digest.example.org>",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink_port),
        "SMTP_SECURITY": "none",
        "OUTBOX_DIR": str(folder / "outbox"),
        "ARXIV_CONTACT": "bench@digest.example.org",
        # Offers English + 简体中文 with no network; no translation for this day
        # exists, so bilingual digests go out without waiting (the notes say so).
        "TRANSLATION_BACKEND": "recorded",
        "TRANSLATION_DEADLINE_MINUTES": "0",
        "PYTHONPATH": str(ROOT),
        # The product's defaults, spelled out: each drain's INFO line carries the
        # render/MIME/GC figures read back from the workers' logs (`drain_figures`).
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "text",
    }
    if args.heap_report:
        # Workers append a census of their caches (worker/delivery/sending.py, benchmarks/heap.py).
        env.update(NEWSLETTER_HEAP_REPORT=args.heap_report)
    monitor = None
    run_command(services, "db-upgrade", ["db", "upgrade"], env, deadline)

    rng = random.Random(args.seed)
    phrases = day_phrases(args.distinct, rng)
    csv_path = folder / "subscribers.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "keywords", "language", "timezone"])
        writer.writerows(subscriber_rows(args.subscribers, phrases, rng))
    import_seconds, output = run_command(
        services, "import", ["subscribers", "import", "--confirmed", str(csv_path)], env, deadline
    )
    found = re.findall(r"^imported .*$", output, re.MULTILINE)
    summary = found[-1] if found else output[-1000:]
    if summary != f"imported {args.subscribers}, skipped 0 existing, rejected 0":
        raise BenchmarkFailed(f"import: {summary}")

    workers = [
        services.start(f"worker-{n}", [sys.executable, "-m", "newsletter.cli", "worker"], env)
        for n in (1, 2)
    ]
    monitor = Monitor(raw_url, own_cluster=not outside)
    stack.callback(monitor.connection.close)
    ingest_seconds, output = run_command(
        services,
        "ingest",
        ["ingest", "--file", str(FEED), "--date", LISTING_DATE.isoformat()],
        env,
        deadline,
    )
    ingest_done = time.time()
    completed = monitor.one(
        "SELECT completed_at FROM listing_days WHERE listing_date = %s", LISTING_DATE
    )
    if completed is None or completed[0] is None:
        raise BenchmarkFailed(f"ingest did not complete the day:\n{output[-1000:]}")
    monitor.reset_statements()
    load_before = load_average()
    cpu_before = {p.pid: cpu_seconds(p.pid) for p in workers}
    queued_at = time.time()
    run_command(
        services,
        "queue",
        ["digest", "send", "--date", LISTING_DATE.isoformat(), "--queue"],
        env,
        deadline,
    )

    # Polled lightly: counting the day's rows is a scan, which PostgreSQL
    # would do on the workers' two cores; once all are made, an index probe.
    rows_made_at = None
    while True:
        if rows_made_at is None:
            if monitor.rows_made() >= args.subscribers:
                rows_made_at = time.time()
        elif not monitor.unfinished():
            break
        if all(worker.poll() is not None for worker in workers):
            raise BenchmarkFailed(f"both workers exited; rows: {monitor.statuses()}")
        if time.time() > deadline:
            raise BenchmarkFailed(f"timeout after {args.timeout} s; rows: {monitor.statuses()}")
        time.sleep(0.5 if rows_made_at is None else 1.0)
    counts = monitor.statuses()
    cpu = sum(cpu_seconds(p.pid) - cpu_before[p.pid] for p in workers)
    load_after = load_average()
    counted, trips, top = monitor.round_trips()
    first, last = monitor.one(
        "SELECT extract(epoch FROM min(sent_at)), extract(epoch FROM max(sent_at)) "
        "FROM deliveries WHERE listing_date = %s AND status = 'sent'",
        LISTING_DATE,
    )
    time.sleep(1)  # smtp-sink prints its counters when each session ends
    for worker in workers:
        services.stop(worker)
    sent = counts.get("sent", 0)
    accepted = sink_count(sink_log)
    drains = drain_figures([folder / f"worker-{n}.log" for n in (1, 2)])

    samples, messages = sample_messages(env, args.sample, args.subscribers, len(workers))
    bare = bare_loop(sink_port, "digest@digest.example.org", messages)
    send_rate = sent / max(1e-9, float(last) - float(first)) if sent else 0.0
    # Every sent row was rendered in a drain that logged it (more if a batch was given back).
    ok = accepted == args.subscribers and sent == args.subscribers and drains["digests"] >= sent
    solo = {}
    if ok and args.single_worker:
        # The bare loop's messages went to the same sink.
        before = accepted + len(messages)
        solo = single_worker(services, monitor, env, args, sink_log, before, deadline, bare)
    render, mime = samples["render"], samples["MIME"]
    result = {
        "subscribers": args.subscribers,
        "machine load (1-min load average at queue / at the end)": f"{load_before} / {load_after}",
        "rows": counts,
        "sink accepted": accepted,
        "import seconds": import_seconds,
        "ingest seconds": ingest_seconds,
        "dispatch seconds (queue -> all rows made)": (rows_made_at or 0) - queued_at,
        "send msg/s (2 workers, first to last accepted)": send_rate,
        "ingest done -> last digest accepted, seconds": float(last) - ingest_done,
        "worker CPU ms per message (both workers, dispatch included)": cpu * 1000 / max(1, sent),
        f"database {counted} per message": trips / max(1, sent),
        "render CPU ms per digest, measured in the workers' drains": f"{drains['render']:.3f}",
        "MIME CPU ms per digest, measured in the workers' drains": f"{drains['mime']:.3f}",
        "GC CPU ms per digest, measured in the workers' drains": f"{drains['gc']:.3f}",
        "  drains: digests rendered / drain lines (both workers)": (
            f"{drains['digests']:,} / {drains['drains']}"
        ),
        "sample (this process): render CPU ms per digest, amortized": render["amortized"],
        "  sample: render cold / warm, ms per digest": f"{render['cold']:.3f} / {render['warm']:.3f}",
        "  sample: render one-time day cost per process, ms": render["one-time"],
        "sample (this process): MIME CPU ms per message, amortized": mime["amortized"],
        "  sample: MIME cold / warm, ms per message": f"{mime['cold']:.3f} / {mime['warm']:.3f}",
        "  sample: MIME one-time day cost per process, ms": mime["one-time"],
        "  sample sizes (cold, warm; disjoint readers)": samples["sample"],
        "bare smtplib loop msg/s (same sink, one connection)": bare,
        "bare loop messages": len(messages),
        "one worker / bare loop (2-worker msg/s / 2, the issue's figure)": (
            (send_rate / 2) / bare if bare else 0.0
        ),
        **solo,
        "peak RSS MB": {
            **{label: kb / 1024 for label, kb in sorted(sampler.peak_kb.items())},
            "this script": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "top statements": top,
        "ok": ok and solo.get("ok", True),
    }
    solo.pop("ok", None)
    return result


def single_worker(
    services: Services, monitor: Monitor, env: dict, args, sink_log: Path, accepted: int,
    deadline: float, bare: float,
) -> dict:  # fmt: skip
    """One worker alone: M sent rows queued again and drained by a fresh `newsletter worker`.

    Its msg/s (first to last accepted of those rows) against the bare loop is
    the single-worker ratio; its CPU includes its own cold start (the day's
    fragments) and the dispatch pass that queues the drain.
    """
    count = min(args.single_worker, args.subscribers)
    monitor.one(
        "WITH again AS (SELECT id FROM deliveries WHERE listing_date = %s AND status = 'sent' "
        "ORDER BY id LIMIT %s) UPDATE deliveries SET status = 'queued', sent_at = NULL, "
        "claimed_by = NULL, claimed_at = NULL, lease_expires_at = NULL, attempts = 0 "
        "WHERE id IN (SELECT id FROM again) RETURNING 1",
        LISTING_DATE,
        count,
    )
    worker = services.start("worker-solo", [sys.executable, "-m", "newsletter.cli", "worker"], env)
    time.sleep(3)  # imported and listening
    cpu_before = cpu_seconds(worker.pid)
    run_command(
        services, "queue-solo", ["digest", "send", "--date", LISTING_DATE.isoformat(), "--queue"],
        env, deadline,
    )  # fmt: skip
    while monitor.unfinished():
        if worker.poll() is not None or time.time() > deadline:
            raise BenchmarkFailed(f"single worker: exited or timed out; rows: {monitor.statuses()}")
        time.sleep(1.0)
    cpu = cpu_seconds(worker.pid) - cpu_before
    first, last, sent = monitor.one(
        "SELECT extract(epoch FROM min(sent_at)), extract(epoch FROM max(sent_at)), count(*) "
        "FROM deliveries WHERE listing_date = %s AND status = 'sent' AND id IN (SELECT id FROM "
        "deliveries WHERE listing_date = %s ORDER BY id LIMIT %s)",
        LISTING_DATE,
        LISTING_DATE,
        count,
    )
    services.stop(worker)
    until = time.time() + 10  # smtp-sink prints its counters when each session ends
    while sink_count(sink_log) < accepted + count and time.time() < until:
        time.sleep(0.5)
    rate = sent / max(1e-9, float(last) - float(first)) if sent else 0.0
    return {
        "single worker: messages re-sent": sent,
        "single worker msg/s (one worker alone)": rate,
        "one worker / bare loop (one worker alone)": rate / bare if bare else 0.0,
        "single worker CPU ms per message (cold start included)": cpu * 1000 / max(1, sent),
        "single worker: sink accepted in all": sink_count(sink_log),
        "ok": sent == count and sink_count(sink_log) == accepted + count,
    }


def report(result: dict) -> None:
    print(f"\n== scale: {result['subscribers']:,} subscribers, day {LISTING_DATE} ==")
    print(f"{'digest modules':58} {digest_build()}")
    for key, value in result.items():
        if key in ("peak RSS MB", "top statements", "subscribers", "ok"):
            continue
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        if key.startswith("one worker / bare loop"):
            shown = f"{value:.1%}"
        print(f"{key:58} {shown}")
    print("peak RSS (VmHWM):")
    for label, mb in result["peak RSS MB"].items():
        print(f"  {label:56} {mb:8.1f} MB")
    if result["top statements"]:
        print("statements called most (calls, text):")
        for calls, query in result["top statements"]:
            print(f"  {calls:9,}  {query}")
    title = "issue 8's figures (100k):"
    print(f"{title:46} {'today':>18} {'target':>8} {'this run':>10}")
    for name, today, target, prefix in ISSUE_TABLE:
        now = next((v for k, v in result.items() if k.startswith(prefix)), "")
        shown = f"{now:.1%}" if prefix.startswith("one worker") else now
        shown = f"{shown:,.2f}" if isinstance(shown, float) else str(shown)
        print(f"  {name:44} {today:>18} {target:>8} {shown:>10}")
    verdict = "OK" if result["ok"] else "FAILED"
    print(
        f"{verdict}: sink accepted {result['sink accepted']:,}, rows {result['rows']}, "
        f"expected {result['subscribers']:,} sent"
    )


def digest_build() -> str:
    """Which build of the digest modules ROOT holds, the one every process here runs (setup.py)."""
    import worker.digest.assembly

    compiled = worker.digest.assembly.__file__.endswith(".so")
    return "compiled with mypyc (setup.py)" if compiled else "plain Python"


def interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=30_000, help="distinct keyword phrases")
    parser.add_argument("--sample", type=int, default=1000, help="digests rendered in-process")
    parser.add_argument("--timeout", type=float, default=40 * 60, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=20241128)
    parser.add_argument(
        "--heap-report",
        metavar="FOLDER",
        help="workers report their caches here, every 2,500 messages",
    )
    parser.add_argument(
        "--single-worker",
        type=int,
        default=5000,
        metavar="M",
        help="then re-send M rows with one worker alone (0: skip)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()
    # SIGTERM as Ctrl-C: unwind, so every process started here is stopped.
    signal.signal(signal.SIGTERM, interrupt)
    folder = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    folder.chmod(0o755)  # the postgres user reaches its data folder inside
    print(f"working in {folder} (logs of every process)", flush=True)
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
        try:
            result = run(args, stack, folder)
        except BenchmarkFailed as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; stopping everything started", file=sys.stderr)
            return 130
    report(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
