"""The `newsletter` command: Flask's CLI plus every operator command.

Each command runs inside an app context made by `create_app`.
"""

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from newsletter import create_app, migrate


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False)
def main() -> None:
    """arXiv digest newsletter: web, worker, scheduler and operator commands."""


@main.group()
def db() -> None:
    """Database migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    migrate.upgrade(revision)
    click.echo(f"database at {revision}")


# --- ingest (worker/ingest.py) ---

# --- digest (worker/digest.py) ---

# --- translate (worker/translation.py) ---
