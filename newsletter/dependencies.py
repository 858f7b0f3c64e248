"""Start-up checks: the database and Redis answer, or the process stops with one line.

`create_app` (web, `newsletter dev`, tests) and the CLI's app loader call
`check_dependencies` once per process start; it makes one connection to each,
so it stays cheap enough for the tests' many apps. A dependency lost later is
the web's 503 page (newsletter/web.py) and the worker's reconnect loop
(worker/schedule.py `run_worker`).
"""

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from newsletter.config import settings
from newsletter.config_parsers import ConfigError

# Seconds to wait for a server at start; an unreachable host should fail fast.
CONNECT_TIMEOUT_SECONDS = 5


class DependencyError(ConfigError):
    """The database or Redis a setting names cannot be used; the process must not start."""


def check_dependencies(app: Flask) -> None:
    """Raise DependencyError unless the database (and Redis, when set) answers."""
    check_database(app.extensions["db_engine"])
    redis_url = settings(app).REDIS_URL
    if redis_url:
        check_redis(redis_url)


def check_database(engine: Engine) -> None:
    """Connect once and run a query; SQLite must also take a write (then undone)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            if engine.dialect.name == "sqlite":
                # A read-only file opens and reads fine; only a write tells.
                version = int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                connection.exec_driver_sql(f"PRAGMA user_version = {version}")
                connection.exec_driver_sql("ROLLBACK")
    except SQLAlchemyError as error:
        where = make_url(str(engine.url)).render_as_string(hide_password=True)
        raise DependencyError(f"DATABASE_URL: cannot use {where}: {_cause(error)}") from None


def check_redis(url: str) -> None:
    """Ping Redis once."""
    connection = Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    try:
        connection.ping()
    except RedisError as error:
        raise DependencyError(f"REDIS_URL: cannot reach Redis: {_cause(error)}") from None
    finally:
        connection.close()


def _cause(error: Exception) -> str:
    """The driver's own first line (SQLAlchemy's wrapper adds a traceback-like tail)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__
