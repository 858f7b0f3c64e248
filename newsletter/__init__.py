"""The app factory. Every process (web, worker, scheduler, CLI, tests) starts here."""

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

from newsletter.config import ConfigError, config_warnings, load_config, read_environment

log = logging.getLogger(__name__)

# gunicorn's exit status for "the app could not be loaded": it stops, without retrying.
EXIT_APP_LOAD_ERROR = 4


def create_app(test_config: dict | None = None, *, dev: bool = False) -> Flask:
    """Build the app from the environment, overlaid with `test_config`, and check its
    database and Redis answer.

    For a process (gunicorn, `newsletter dev`; no `test_config`), a bad setting or
    a dependency that is down ends it with one line naming the setting, not a
    traceback. Tests get the ConfigError.
    """
    from newsletter.dependencies import check_dependencies

    app = None
    try:
        app = build_app(test_config, dev=dev)
        check_dependencies(app)
    except ConfigError as error:
        if app is not None:
            # The database may have answered before Redis did not: close that connection.
            app.extensions["db_engine"].dispose()
        if test_config is not None:
            raise
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_APP_LOAD_ERROR) from None
    for warning in config_warnings(app.config):
        log.warning("%s", warning)
    return app


def instance_path(environ: Mapping[str, str] = os.environ) -> str | None:
    """NEWSLETTER_INSTANCE_PATH made absolute, or None for Flask's `instance/` beside the package.

    Read before the settings, since the settings' defaults (the SQLite file, the
    outbox) live in the instance folder.
    """
    path = environ.get("NEWSLETTER_INSTANCE_PATH", "").strip()
    return os.path.abspath(path) if path else None


def build_app(test_config: dict | None = None, *, dev: bool = False) -> Flask:
    """The app without the start-up checks; raises ConfigError on a bad setting.

    A process (gunicorn, the CLI) also reads `.env` in its working directory;
    tests (`test_config`) do not, so a developer's `.env` never reaches them.
    """
    environ = (
        dict(os.environ) if test_config is not None else read_environment(os.environ, Path.cwd())
    )
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path(environ))
    os.makedirs(app.instance_path, exist_ok=True)
    if test_config and test_config.get("SECRET_KEY"):
        environ["SECRET_KEY"] = test_config["SECRET_KEY"]
    app.config.from_mapping(load_config(environ, app.instance_path, dev))
    if test_config:
        app.config.update(test_config)
    from newsletter.logging_setup import configure_logging

    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    from newsletter import (
        bounce_webhooks,
        db,
        digests,
        feed,
        health,
        metrics,
        preview,
        subscriptions,
        web,
    )

    db.init_app(app)
    web.init_app(app)
    # After web's body checks, which refuse an oversized or non-UTF-8 form first.
    web.csrf.init_app(app)
    app.register_blueprint(subscriptions.bp)
    app.register_blueprint(digests.bp)
    app.register_blueprint(feed.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(bounce_webhooks.bp)
    app.register_blueprint(preview.bp)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    if app.config["DEV"]:
        from newsletter import outbox

        app.register_blueprint(outbox.bp)
    return app
