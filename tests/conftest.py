"""Shared fixtures: the real app on a real database, a real Redis, a real SMTP server.

The database is SQLite in a temporary folder, or the PostgreSQL server named by
TEST_DATABASE_URL (CI runs the suite on both). Redis is a private redis-server
process started for the session; SMTP is aiosmtpd on 127.0.0.1.

The suite runs on pytest-xdist workers (pyproject's addopts): each worker has
its own temporary folder, SQLite file, Redis, servers on free ports and, on
PostgreSQL, its own database `<name>_<worker>` created here from
TEST_DATABASE_URL. Test databases skip the disk syncs of a commit (SQLite
`synchronous = OFF`, PostgreSQL `synchronous_commit = off`): durability
across a power cut is not what a test checks, and the syncs were most of the
suite's wall time.

Workers take tests one (or one group) at a time (`--dist loadgroup`), the
longest first (LONG_FIRST): a long test started last would hold the run
open alone. Tests that share a module-scoped fixture (a `newsletter dev`
process, the fuzzed site) go to one worker, which builds it once.
"""

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import jinja2
import pytest
from playwright.sync_api import sync_playwright
from redis import Redis
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ProgrammingError

# This machine's environment sets PYTHONDONTWRITEBYTECODE, so every xdist
# worker rewrote and compiled all the test files and the project again (~3 s
# of CPU each), and so did every CLI process a test starts. The suite writes
# Python's usual __pycache__ folders (ignored by git) for itself and for those
# processes; before the project's imports below, so that they are cached too.
if sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

from arxiv_server import FeedServer  # noqa: E402

from newsletter import create_app, db, feed_cache, ratelimit  # noqa: E402
from newsletter.config import settings  # noqa: E402
from newsletter.models import Base  # noqa: E402
from worker.delivery import sending  # noqa: E402
from worker.digest import day_cache  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): two workers per core for the suite, none for one file.

    Much of the suite waits (sleeps, subprocesses, sockets), so two workers per
    core keep both busy; but each worker first imports the test files it is
    given, which costs a single file's run more than it gains.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = 2 * (cores or 1)
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        files = {arg.split("::")[0] for arg in config.args}
        if all(Path(name).is_file() for name in files):
            return 0 if len(files) == 1 else min(workers, len(files))
    return workers


# The test files whose tests run longest (CPU or waiting; measured with
# --durations), longest first: workers start on them (see the module docstring).
LONG_FIRST = (
    "test_dev.py",
    "test_hostile_input.py",
    "test_spam.py",
    "test_dependencies.py",
    "test_preview_browser.py",
    "test_browser.py",
    "test_golden.py",
    "test_schedule.py",
    "test_admin_browser.py",
    "test_matching.py",
    "test_placeholders.py",
    "test_tex.py",
    "test_preview.py",
    "test_delivery.py",
)


def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    """Long test files first; tests sharing a module-scoped fixture in one xdist group."""
    rank = {name: position for position, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = fixtures.name2fixturedefs.values() if fixtures else ()
        if any(d[-1].scope == "module" for d in definitions if d):
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@event.listens_for(Engine, "connect")
def _skip_sqlite_syncs(dbapi_connection, _record) -> None:
    """Every SQLite connection a test opens commits without fsync (see the module docstring)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous = OFF")


def worker_database(url: str) -> str:
    """This xdist worker's own PostgreSQL database, created (without syncs) if missing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = make_url(url)
    own = base.set(database=f"{base.database}_{worker}") if worker else base
    server = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        name = connection.dialect.identifier_preparer.quote(own.database)
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": own.database}
        )
        if not exists:
            try:
                connection.execute(text(f"CREATE DATABASE {name}"))
            except ProgrammingError:  # created meanwhile by a second session of this worker id
                pass
        connection.execute(text(f"ALTER DATABASE {name} SET synchronous_commit = off"))
    server.dispose()
    return own.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url and make_url(url).get_backend_name() == "postgresql":
        url = worker_database(url)
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


def empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture
def config(database_url, tmp_path) -> dict:
    """Settings for a test app; tests may change them before asking for `app`."""
    return {
        "TESTING": True,
        "DEV": False,
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": None,
        "BASE_URL": "http://digest.test",
        "MAIL_FROM": "arXiv digest <digest@digest.test>",
        "SMTP_HOST": None,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "ARXIV_MIN_INTERVAL": 0.0,
        "ARXIV_CONTACT": "tests@digest.test",
    }


class TemplateCache(jinja2.BytecodeCache):
    """Compiled page templates kept for the session, checked against their source.

    A deployment compiles each template once per process; the tests make an
    app per test, and compiling its templates again was half of each test's setup.
    """

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = TemplateCache()


@pytest.fixture
def app(config, database_url):
    empty_tables(database_url)
    app = create_app(config)
    app.jinja_env.bytecode_cache = TEMPLATES
    with app.app_context():
        yield app
        db.session().rollback()
    app.extensions["db_engine"].dispose()


@pytest.fixture(autouse=True, scope="session")
def prompt_claim_rechecks():
    """Drains waiting on another's claims look again every 0.1 s instead of every 5 s.

    In production the 5 s spare the database; in a test of two drains racing,
    the loser would sit out those 5 s after the winner's last row was done.
    What a drain may claim, and when, is unchanged.
    """
    saved, sending._RECHECK_SECONDS = sending._RECHECK_SECONDS, 0.1
    yield
    sending._RECHECK_SECONDS = saved


@pytest.fixture(autouse=True)
def fresh_process_state() -> None:
    """Each test starts with no in-process rate-limit counts and no cached days.

    A worker runs tests of any file in any order (see the module docstring):
    sign-ups counted by one test must not refuse the next one's, and the feed's
    listing days read by one test (cached for a minute per database URL, which
    every test on the worker shares) must not hide the next one's. Nor may a
    DayDigest made under one test's settings serve the next test's drains and
    digest pages (its key is the day's data, not the settings, which a
    deployment's process never changes).
    """
    ratelimit.reset_local()
    feed_cache.clear_caches()
    day_cache.DAYS.clear()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def outbox(app) -> "Outbox":
    return Outbox(Path(settings(app).OUTBOX_DIR))


class Outbox:
    """The messages the app wrote to its dev outbox, parsed."""

    def __init__(self, path: Path):
        self.path = path

    def messages(self) -> list[EmailMessage]:
        if not self.path.exists():
            return []
        return [
            message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(self.path.glob("*.eml"))
        ]


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 serving scripted recorded arXiv responses."""
    with FeedServer() as server:
        yield server


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads one here
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def chromium_session():
    """One headless Chromium per xdist worker, launched by its first browser test.

    Launching Chromium (and Playwright's driver) cost ~1.3 s of CPU, paid by
    every browser test when each launched its own. Tests stay apart: each
    works in contexts of its own (cookies, storage, cache), closed after it.
    Between browser tests Playwright's event loop is not left marked as
    running in this thread (its sync API marks it between calls), so that the
    worker's other tests see no running loop, as before.
    """
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        loop = asyncio.get_running_loop()
        asyncio._set_running_loop(None)
        yield browser, loop
        asyncio._set_running_loop(loop)
        browser.close()


@pytest.fixture
def browser(chromium_session):
    """The worker's Chromium for one test; the contexts the test opened are closed after it."""
    chromium, loop = chromium_session
    if not chromium.is_connected():
        pytest.fail("the worker's Chromium is gone: it crashed or was killed in an earlier test")
    asyncio._set_running_loop(loop)
    try:
        yield chromium
        for context in chromium.contexts:
            context.close()
    finally:
        asyncio._set_running_loop(None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A private redis-server on 127.0.0.1 for the whole test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    connection = Redis.from_url(url)
    for _ in range(100):
        try:
            connection.ping()
            break
        except Exception:
            time.sleep(0.05)
    yield url
    connection.close()
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis_url(redis_server) -> str:
    connection = Redis.from_url(redis_server)
    connection.flushall()
    connection.close()
    return redis_server
