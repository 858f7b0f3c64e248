"""Bad settings and dependencies that are down: every process (gunicorn, CLI,
worker) stops at start with one line naming the setting; a dependency lost
while the site runs is a 503 page; the worker waits for Redis and goes on.

Real components only: gunicorn, the `newsletter` CLI and worker as
subprocesses, a private redis-server stopped and started again on its port,
and for PostgreSQL a TCP relay that is cut to lose the database.
"""

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import empty_tables, free_port
from redis import Redis
from rq import Queue, Worker
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from tcp_relay import TcpRelay

from newsletter import create_app, db, ratelimit
from newsletter.dependencies import DependencyError
from newsletter.models import Base, Keyword, Subscriber
from newsletter.signups import register_sign_up
from newsletter.tokens import make_token
from worker.queue import QUEUE_NAME

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SIGNUP_SETTINGS = {
    "keywords": ["graph neural networks"],
    "language": "en",
    "timezone": "UTC",
    "include_replacements": False,
    "delivery_hour": None,
}


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    ratelimit.reset_local()


def process_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a production process: no dev mode, an https site."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NEWSLETTER_DEV")}
    env.update(
        SECRET_KEY="test-secret-key",
        BASE_URL="https://digest.test",
        OUTBOX_DIR=str(tmp_path / "outbox"),
        ARXIV_CONTACT="tests@digest.test",
        **settings,
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "newsletter.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_gunicorn(env: dict[str, str]) -> subprocess.CompletedProcess:
    """gunicorn as the Procfile runs it; it must stop by itself on a bad start."""
    return subprocess.run(
        [
            shutil.which("gunicorn") or "gunicorn",
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--workers",
            "1",
            "newsletter:create_app()",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def unreachable_postgres() -> str:
    return f"postgresql+psycopg://postgres:postgres@127.0.0.1:{free_port()}/newsletter"


def unwritable_sqlite(tmp_path: Path) -> str:
    # Root may write anywhere, so the file is put where no file can be: under a file.
    (tmp_path / "not-a-folder").write_text("")
    return f"sqlite:///{tmp_path / 'not-a-folder' / 'newsletter.sqlite3'}"


def one_line_naming(stderr: str, setting: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if setting in line]
    assert len(lines) == 1, stderr
    return lines[0]


# --- at start ---


def test_a_database_url_that_is_not_a_url_is_one_line_in_the_cli_and_gunicorn(tmp_path):
    env = process_env(tmp_path, DATABASE_URL="notaurl")
    cli = run_cli(env, "status")
    assert cli.returncode != 0
    assert "is not a database URL" in one_line_naming(cli.stderr, "DATABASE_URL")

    server = run_gunicorn(env)
    assert server.returncode != 0
    line = one_line_naming(server.stderr, "DATABASE_URL")
    assert "is not a database URL" in line and "sqlalchemy" not in server.stderr.lower()


@pytest.mark.parametrize(
    "setting, make_value, cause",
    [
        ("DATABASE_URL", lambda tmp: unreachable_postgres(), "Connection refused"),
        ("DATABASE_URL", unwritable_sqlite, "unable to open database file"),
        ("REDIS_URL", lambda tmp: f"redis://127.0.0.1:{free_port()}/0", "Connection refused"),
    ],
    ids=["postgresql down", "sqlite path unwritable", "redis down"],
)
def test_a_dependency_down_at_start_stops_every_process_with_one_line(
    tmp_path, database_url, setting, make_value, cause
):
    env = process_env(tmp_path, DATABASE_URL=database_url)
    env[setting] = make_value(tmp_path)
    commands = [("status",)]
    if setting == "REDIS_URL":
        commands += [("worker",), ("scheduler",)]
    for command in commands:
        result = run_cli(env, *command)
        assert result.returncode != 0
        assert cause in one_line_naming(result.stderr, setting)
    server = run_gunicorn(env)
    assert server.returncode != 0
    assert cause in one_line_naming(server.stderr, setting)


def test_create_app_checks_its_database_and_redis(config, tmp_path):
    with pytest.raises(DependencyError, match="DATABASE_URL: .*unable to open"):
        create_app({**config, "DATABASE_URL": unwritable_sqlite(tmp_path)})
    # A file that opens and reads but cannot be written (root ignores file modes).
    engine = create_engine(f"sqlite:///{tmp_path / 'read-only.sqlite3'}")
    Base.metadata.create_all(engine)
    engine.dispose()
    read_only = f"sqlite:///file:{tmp_path / 'read-only.sqlite3'}?mode=ro&uri=true"
    with pytest.raises(DependencyError, match="DATABASE_URL: .*readonly"):
        create_app({**config, "DATABASE_URL": read_only})
    with pytest.raises(DependencyError, match="REDIS_URL: cannot reach Redis"):
        create_app({**config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})


def test_help_needs_no_database(tmp_path):
    result = run_cli(process_env(tmp_path, DATABASE_URL=unreachable_postgres()), "--help")
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout and result.stderr == ""


# --- lost while running ---


class RedisProcess:
    """A private redis-server that a test can stop and start again on the same port."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
            + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        connection = Redis.from_url(self.url)
        for _ in range(200):
            try:
                connection.ping()
                break
            except Exception:
                time.sleep(0.025)
        connection.close()

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    redis = RedisProcess(tmp_path)
    redis.start()
    yield redis
    if redis.process.poll() is None:
        redis.stop()


def assert_friendly_503(response, caplog, setting: str) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "try again in a minute" in page and "Traceback" not in page
    lines = [r for r in caplog.records if "503" in r.getMessage()]
    assert len(lines) == 1 and setting in lines[0].getMessage()
    assert lines[0].exc_info is None and "\n" not in lines[0].getMessage()


def test_redis_lost_while_running_is_a_503_page(config, database_url, private_redis, caplog):
    empty_tables(database_url)
    app = create_app({**config, "REDIS_URL": private_redis.url})
    client = app.test_client()
    token = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    private_redis.stop()
    caplog.set_level(logging.ERROR)
    response = client.post(
        "/",
        data={
            "csrf_token": token,
            "email": "ada@example.org",
            "keywords": "graph neural networks",
            "timezone": "UTC",
        },
    )
    assert_friendly_503(response, caplog, "REDIS_URL")
    app.extensions["db_engine"].dispose()


def test_the_database_lost_while_running_is_a_503_page(config, database_url, tmp_path, caplog):
    url = make_url(database_url)
    relay = None
    if url.get_backend_name() == "sqlite":
        (tmp_path / "db").mkdir()
        app_url = f"sqlite:///{tmp_path / 'db' / 'newsletter.sqlite3'}"
        engine = create_engine(app_url)
        Base.metadata.create_all(engine)
        engine.dispose()
    else:
        relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
        app_url = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        empty_tables(app_url)
    app = create_app({**config, "DATABASE_URL": app_url})
    with app.app_context():
        subscriber = Subscriber(
            email="ada@example.org",
            email_key="ada@example.org",
            keywords=[Keyword(position=0, text="graph neural networks")],
        )
        db.session().add(subscriber)
        db.session().commit()
        manage = f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"
    client = app.test_client()
    assert client.get(manage).status_code == 200

    if relay is not None:
        relay.cut(3600)  # for the rest of the test
    else:
        app.extensions["db_engine"].dispose()
        shutil.rmtree(tmp_path / "db")
    caplog.set_level(logging.ERROR)
    assert_friendly_503(client.get(manage), caplog, "DATABASE_URL")
    app.extensions["db_engine"].dispose()


class WorkerProcess:
    """`newsletter worker`, its log read line by line as it comes, so a test can await a line."""

    def __init__(self, env: dict[str, str], redis_url: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli", "worker"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.new_line = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        connection = Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while not Worker.all(connection=connection):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        connection.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.new_line:
                self.lines.append(line)
                self.new_line.notify_all()

    def mark(self) -> int:
        """Where the log is now: `await_line` looks at the lines after it."""
        with self.new_line:
            return len(self.lines)

    def await_line(self, text: str, since: int, seconds: float) -> None:
        """Return once a line of the log after `since` contains `text`."""
        with self.new_line:
            found = self.new_line.wait_for(
                lambda: any(text in line for line in self.lines[since:]), seconds
            )
        assert found, f"no {text!r} in the worker's log within {seconds} s:\n{self.output()}"

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.reader.join(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.output()

    def output(self) -> str:
        with self.new_line:
            return "".join(self.lines)


def wait_for_subscriber(app, email: str, seconds: float) -> Subscriber | None:
    deadline = time.monotonic() + seconds
    with app.app_context():
        while time.monotonic() < deadline:
            found = db.session().scalar(select(Subscriber).where(Subscriber.email == email))
            if found is not None:
                return found
            db.session().rollback()
            time.sleep(0.2)
    return None


def test_the_worker_waits_for_redis_and_goes_on_after_a_restart(
    app, database_url, private_redis, tmp_path
):
    """Redis is restarted twice: while the worker waits for a job, and while it runs one."""
    env = process_env(tmp_path, DATABASE_URL=database_url, REDIS_URL=private_redis.url)
    worker = WorkerProcess(env, private_redis.url)
    try:
        # Lost while waiting for a job: RQ's wait notices, says so, and retries.
        mark = worker.mark()
        private_redis.stop()
        worker.await_line("could not connect to Redis", mark, 30)
        private_redis.start()
        queue = Queue(QUEUE_NAME, connection=Redis.from_url(private_redis.url))
        queue.enqueue(register_sign_up, "first@example.org", SIGNUP_SETTINGS)
        assert wait_for_subscriber(app, "first@example.org", 30) is not None

        # Lost while a job runs (as a restart mid-send): the job ends without Redis.
        queue = Queue(QUEUE_NAME, connection=Redis.from_url(private_redis.url))
        job = queue.enqueue(time.sleep, 2)
        deadline = time.monotonic() + 15
        while job.get_status(refresh=True) != "started":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        mark = worker.mark()
        private_redis.stop()
        # RQ quits its loop when the job ends without Redis; run_worker waits for it instead.
        worker.await_line("Redis (REDIS_URL) unreachable, retrying", mark, 30)
        assert worker.process.poll() is None, "the worker exited when Redis went away"
        private_redis.start()
        queue = Queue(QUEUE_NAME, connection=Redis.from_url(private_redis.url))
        queue.enqueue(register_sign_up, "second@example.org", SIGNUP_SETTINGS)
        assert wait_for_subscriber(app, "second@example.org", 60) is not None
        assert worker.process.poll() is None
    finally:
        output = worker.stop()
    assert "Traceback" not in output, output
