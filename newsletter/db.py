"""The database engine and the per-app-context session.

`init_app` builds one engine per app; `session()` hands out one SQLAlchemy
session per app context (a request, a job, a CLI command) and closes it when
the context ends. Whoever owns the unit of work commits; models never do.
"""

from datetime import UTC, datetime

from flask import Flask, current_app, g
from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from newsletter.config import settings
from newsletter.config_parsers import ConfigError


def init_app(app: Flask) -> None:
    """Create the app's engine and close each context's session at teardown."""
    url = settings(app).DATABASE_URL
    options: dict = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        # A web thread, a job thread and the CLI may share one SQLite file.
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif url.startswith("postgresql"):
        # An unreachable server fails the start-up check (and a request) in seconds, not minutes.
        options["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, **options)
    except (ArgumentError, ImportError) as error:
        raise ConfigError(f"DATABASE_URL cannot be used: {error}") from None
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _configure_sqlite)
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.close()


def engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["db_engine"]


def session() -> Session:
    """The current app context's session, created on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def utcnow() -> datetime:
    """The current instant, timezone-aware (we keep no naive datetimes)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite drops the offset, so values are normalised to UTC on the way in and
    tagged UTC on the way out; PostgreSQL stores timestamptz as usual.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
