"""The app factory. Every process (web, worker, scheduler, CLI, tests) starts here."""

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import Flask

# The settings (and SQLAlchemy, which parses DATABASE_URL) are imported by the
# functions below, not here: `newsletter --help` imports this package and needs neither.

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
    from newsletter.config import config_warnings, settings
    from newsletter.config_parsers import ConfigError
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
    for warning in config_warnings(settings(app)):
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
    from newsletter.config import SETTING_NAMES, load_settings, read_environment, settings

    environ = (
        dict(os.environ) if test_config is not None else read_environment(os.environ, Path.cwd())
    )
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path(environ))
    os.makedirs(app.instance_path, exist_ok=True)
    if test_config and test_config.get("SECRET_KEY"):
        environ["SECRET_KEY"] = test_config["SECRET_KEY"]
    loaded = load_settings(environ, app.instance_path, dev)
    overrides = {
        name: value for name, value in (test_config or {}).items() if name in SETTING_NAMES
    }
    app.extensions["settings"] = loaded = replace(loaded, **overrides)
    # Flask's own keys (TESTING, SERVER_NAME, WTF_CSRF_ENABLED ...) stay in app.config.
    app.config["SECRET_KEY"] = loaded.SECRET_KEY
    app.config.update({k: v for k, v in (test_config or {}).items() if k not in SETTING_NAMES})
    from newsletter.logging_setup import configure_logging

    configure_logging(loaded.LOG_LEVEL, loaded.LOG_FORMAT)

    from newsletter import (
        admin,
        bounce_webhooks,
        db,
        digests,
        feed,
        health,
        i18n,
        metrics,
        preview,
        subscriptions,
        web,
    )

    db.init_app(app)
    # Templates read the settings as `settings` (Flask's `config` holds only its own keys).
    app.context_processor(lambda: {"settings": settings(app)})
    web.init_app(app)
    i18n.init_app(app)
    # After web's body checks, which refuse an oversized or non-UTF-8 form first.
    web.csrf.init_app(app)
    app.register_blueprint(subscriptions.bp)
    app.register_blueprint(digests.bp)
    app.register_blueprint(feed.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(bounce_webhooks.bp)
    app.register_blueprint(preview.bp)
    app.register_blueprint(admin.bp)
    if loaded.TRUSTED_PROXIES:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = loaded.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]  # Flask's documented way to wrap the WSGI app
    if loaded.DEV:
        from newsletter import outbox

        app.register_blueprint(outbox.bp)
    return app


def replace_settings(app: Flask, **changes: Any) -> None:
    """Give `app` new settings with `changes` (tests)."""
    from newsletter.config import settings

    app.extensions["settings"] = replace(settings(app), **changes)
