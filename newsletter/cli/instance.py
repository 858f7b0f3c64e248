"""The app a command runs on: the environment's settings, or the dev instance's.

Used by the root group in newsletter/cli/__init__.py (`create_cli_app`) and by
`newsletter dev` (newsletter/cli/dev.py), which records its settings here.
"""

import json
import os
from pathlib import Path

import click
from flask import Flask
from flask.cli import NoAppException

# `newsletter dev` writes this into the instance folder: the settings it ran
# with. Other commands in a shell with neither SECRET_KEY nor DATABASE_URL set
# then work on that dev instance. A production process always has SECRET_KEY
# set (it refuses to start without it), so it never reads the marker.
DEV_MARKER = "dev-instance.json"
# The settings `newsletter dev` chooses for itself when the environment does not.
DEV_SETTINGS = ("BASE_URL", "TRANSLATION_BACKEND")


def instance_folder() -> Path:
    """The instance folder `build_app` uses (NEWSLETTER_INSTANCE_PATH or Flask's default)."""
    from newsletter import instance_path

    return Path(Flask("newsletter", instance_path=instance_path()).instance_path)


def dev_marker() -> Path | None:
    """The dev instance's marker when this shell should use it, else None."""
    if os.environ.get("SECRET_KEY", "").strip() or os.environ.get("DATABASE_URL", "").strip():
        return None
    marker = instance_folder() / DEV_MARKER
    return marker if marker.is_file() else None


def write_dev_marker(settings: dict[str, str]) -> Path:
    """Record the dev instance's settings (called by `newsletter dev`)."""
    marker = instance_folder() / DEV_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return marker


def use_dev_instance() -> Path | None:
    """Take the dev instance's settings into this process if `dev_marker` says so."""
    from newsletter.config_parsers import ConfigError

    marker = dev_marker()
    if marker is None:
        return None
    try:
        settings = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{marker} is not readable ({error}); run `newsletter dev` again"
        ) from None
    for name in DEV_SETTINGS:
        if isinstance(settings.get(name), str):
            os.environ.setdefault(name, settings[name])
    return marker


def create_cli_app():
    """The app for a command; a bad setting or a dependency down is one line, not a traceback.

    Resolving a command builds the app too, but needs no database: only a
    running command checks the database and Redis.
    """
    from newsletter import build_app
    from newsletter.config_parsers import ConfigError
    from newsletter.dependencies import check_dependencies

    context = click.get_current_context(silent=True)
    running = context is not None and context.parent is not None
    try:
        marker = use_dev_instance()
        app = build_app(dev=marker is not None)
        app.config["DEV_INSTANCE"] = str(marker) if marker else None
        if running:
            check_dependencies(app)
    except ConfigError as error:
        message = str(error)
        if "SECRET_KEY" in message:
            message += "; or run `newsletter dev` first and use its dev instance"
        if running:
            raise click.ClickException(message) from None
        raise NoAppException(message) from None
    return app
