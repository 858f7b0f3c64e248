"""`newsletter db ...`: migrations (newsletter/migrate.py, Flask-Migrate's commands)."""

import click
from flask.cli import AppGroup, with_appcontext

from newsletter import migrate


@click.group("db", cls=AppGroup)
def db_group() -> None:
    """Database migrations (Flask-Migrate over migrations/)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    migrate.upgrade(revision)
    click.echo(f"database at {revision}")


# downgrade, current, migrate, revision, history, heads, stamp, check, ...
for _command in migrate.flask_migrate_commands():
    db_group.add_command(_command)
