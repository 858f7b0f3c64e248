"""Shared fixtures: the real app on a real database, a real Redis, a real SMTP server.

The database is SQLite in a temporary folder, or the PostgreSQL server named by
TEST_DATABASE_URL (CI runs the suite on both). Redis is a private redis-server
process started for the session; SMTP is aiosmtpd on 127.0.0.1.
"""

import os
import shutil
import socket
import subprocess
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from arxiv_server import FeedServer
from redis import Redis
from sqlalchemy import create_engine, text

from newsletter import create_app, db
from newsletter.models import Base

DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
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


@pytest.fixture
def app(config, database_url):
    empty_tables(database_url)
    app = create_app(config)
    with app.app_context():
        yield app
        db.session().rollback()
    app.extensions["db_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def outbox(app) -> "Outbox":
    return Outbox(Path(app.config["OUTBOX_DIR"]))


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
