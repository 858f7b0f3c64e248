"""Migrations through Flask-Migrate, over migrations/ (Alembic).

Used by the `newsletter db` commands (newsletter/cli/db.py: Flask-Migrate's upgrade,
downgrade, current, migrate, revision, history, ...), by `newsletter dev` and by
tests. Flask-Migrate is registered on an app only when a migration runs
(`init_app`), so the web process never loads Alembic.
"""

import copy
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import flask_migrate.cli
from alembic import command
from alembic.config import Config
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from flask_migrate import Migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def init_app(app: Flask) -> None:
    """Register Flask-Migrate on `app` (once), pointing at migrations/."""
    if "migrate" not in app.extensions:
        # migrations/env.py chooses compare_type and render_as_batch itself.
        extension = Migrate(directory=str(MIGRATIONS_DIR))
        extension.configure(_print_to_current_stdout)
        extension.init_app(app)


def _print_to_current_stdout(config: Config) -> Config:
    # Alembic's Config defaults to the sys.stdout of when alembic was imported;
    # `db current`, `history`, ... print to the one of the moment (a pipe, click's runner).
    config.stdout = sys.stdout
    return config


def alembic_config() -> Config:
    """Alembic's config for the current app, as Flask-Migrate's commands build it."""
    init_app(current_app)
    return current_app.extensions["migrate"].migrate.get_config()


def upgrade(revision: str = "head") -> None:
    """Bring the current app's database to `revision`; raises on failure."""
    command.upgrade(alembic_config(), revision)


# `db init` would make a second migrations folder; `list-templates` serves it.
# `upgrade` is newsletter/cli/db.py's own (it names the revision reached).
NOT_OFFERED = ("init", "list-templates", "upgrade")


def flask_migrate_commands() -> Iterator[click.Command]:
    """Flask-Migrate's `db` commands, each registering Flask-Migrate on the app first."""
    for name, flask_command in flask_migrate.cli.db.commands.items():
        if name not in NOT_OFFERED:
            yield _registering(flask_command)


def _registering(flask_command: click.Command) -> click.Command:
    run = flask_command.callback
    assert run is not None

    @with_appcontext
    def callback(**options: object) -> object:
        init_app(current_app)
        # What Flask-Migrate's own `db` group would have set: its -d and -x options.
        g.setdefault("directory", None)
        g.setdefault("x_arg", ())
        return click.get_current_context().invoke(run, **options)

    wrapped = copy.copy(flask_command)
    wrapped.callback = callback
    return wrapped
