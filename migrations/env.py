"""Alembic environment: runs the migrations on the app's database.

Alembic runs this file for every command. Three callers reach it:
- `newsletter db ...` (Flask-Migrate's commands: upgrade, downgrade, current,
  migrate, revision, history, ...; newsletter/cli/db.py) and newsletter/migrate.py
  (`newsletter dev`, tests), inside an app context: the app's engine;
- plain `alembic -c migrations/alembic.ini ...`, with no app: an app is built
  from the environment (DATABASE_URL, .env) as every process builds one.
With `--sql` (offline) it writes the SQL for the app's database URL instead.
"""

import logging

from alembic import context
from flask import current_app, has_app_context

from newsletter.db import UTCDateTime
from newsletter.models import Base

log = logging.getLogger("alembic.env")


def render_item(type_, obj, autogen_context):
    """Write UTCDateTime as the plain timestamptz it is, so migrations need no app import."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure_options(dialect_name: str) -> dict:
    """What autogenerate compares and how it writes (batch mode for SQLite's ALTER TABLE)."""
    return {
        "target_metadata": Base.metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "render_item": render_item,
    }


def run_migrations_offline() -> None:
    url = current_app.extensions["db_engine"].url
    context.configure(url=url, literal_binds=True, **configure_options(url.get_dialect().name))
    with context.begin_transaction():
        context.run_migrations()


def skip_empty_revision(migration_context, revision, directives) -> None:
    """`db migrate` when the models match the migrations writes no empty revision."""
    if (
        getattr(context.config.cmd_opts, "autogenerate", False)
        and directives[0].upgrade_ops.is_empty()
    ):
        directives[:] = []
        log.info("No changes in schema detected.")


def run_migrations_online() -> None:
    with current_app.extensions["db_engine"].connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table by dropping it; with foreign keys
            # on, dropping `subscribers` would cascade to every delivery. SQLite
            # ignores this pragma inside a transaction, so it is set before one.
            connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        context.configure(
            connection=connection,
            process_revision_directives=skip_empty_revision,
            **configure_options(connection.dialect.name),
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
        connection.commit()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")


def run_migrations() -> None:
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()


if has_app_context():
    run_migrations()
else:
    from newsletter import create_app

    app = create_app()
    try:
        with app.app_context():
            run_migrations()
    finally:
        app.extensions["db_engine"].dispose()
