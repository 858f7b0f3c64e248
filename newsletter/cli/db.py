"""`newsletter db ...`: migrations (newsletter/migrate.py, Flask-Migrate's commands)."""

import click
from flask.cli import AppGroup, with_appcontext


class MigrationGroup(AppGroup):
    """The `db` group, which adds Flask-Migrate's commands the first time it is listed or run.

    Flask-Migrate brings Alembic (and Mako, and Pygments): a third of a second
    that `newsletter --help` and every other command need not pay.
    """

    flask_migrate_added = False

    def add_flask_migrate_commands(self) -> None:
        if self.flask_migrate_added:
            return
        from newsletter import migrate

        # downgrade, current, migrate, revision, history, heads, stamp, check, ...
        for command in migrate.flask_migrate_commands():
            self.add_command(command)
        self.flask_migrate_added = True

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_flask_migrate_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self.add_flask_migrate_commands()
        return super().get_command(ctx, name)


@click.group("db", cls=MigrationGroup)
def db_group() -> None:
    """Database migrations (Flask-Migrate over migrations/)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from newsletter import migrate

    migrate.upgrade(revision)
    click.echo(f"database at {revision}")
