"""The `newsletter` command: Flask's CLI plus every operator command.

The root group lives here; each command group has its own module (db, ingest,
status, digest, translate, subscribers, bounces, processes, dev). Each command
runs inside an app context made by `create_cli_app` (newsletter/cli/instance.py).
The console script `newsletter` and `python -m newsletter.cli` both run `main`.

The command modules import click and Flask's CLI only; each command imports
the app's modules, the database layer and the pipeline stage it runs when it
runs. So `newsletter --help` loads no SQLAlchemy, and `status` no sending,
arXiv or translation code.
"""

import click
from flask.cli import FlaskGroup

from newsletter.cli import (
    bounces,
    db,
    dev,
    digest,
    ingest,
    processes,
    status,
    subscribers,
    translate,
)
from newsletter.cli.instance import create_cli_app


class CommandGroup(FlaskGroup):
    """Flask's group, whose command list needs no app: every command is added here.

    Flask's own `list_commands` and `get_command` load the app to add its
    `app.cli` commands (this app has none), so `newsletter --help` printed a
    settings error.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(click.Group.list_commands(self, ctx))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        # An unknown name is "No such command", not a settings error first.
        self._load_plugin_commands()
        return click.Group.get_command(self, ctx, name)


@click.group(cls=CommandGroup, create_app=create_cli_app, add_version_option=False)
def main() -> None:
    """arXiv digest newsletter: web, worker, scheduler and operator commands."""


for _command in (
    db.db_group,
    ingest.ingest_command,
    status.status_command,
    digest.digest_group,
    translate.translate_command,
    subscribers.subscribers_group,
    bounces.bounces_group,
    processes.worker_command,
    processes.scheduler_command,
    dev.dev_command,
):
    main.add_command(_command)
