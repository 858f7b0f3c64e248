"""Every setting the service reads, from the environment, in one place.

`Settings` is the one definition of each setting: its environment variable (the
field's name), type, default and check. `load_settings` is called once by
`create_app`; nothing else reads os.environ. `read_environment` adds a `.env`
file in the working directory beneath it. Each value's parser is in
`config_parsers.py`.
Each setting has a safe development default except the production secrets,
which have none: the app refuses to start without them outside dev mode.
Mirrored, with comments, in `.env.example`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from flask import Flask, current_app

from newsletter.config_parsers import (
    _PARSERS,
    ConfigError,
    _archive_groups,
    _bool,
    _database_url,
    _directory_url,
    _hours,
    _imap_url,
    _language_code,
    _log_format,
    _redis_url,
    _seconds,
    _sendgrid_key,
    _smtp_security,
    _translation_backend,
    _url,
)


def read_environment(environ: Mapping[str, str], directory: Path) -> dict[str, str]:
    """`environ` over the settings in `directory`/.env, when that file exists.

    What the process was started with wins, as with Flask's own loader (which
    `newsletter ...` also runs), so one setting can be overridden without
    editing the file. Called by the app factory for every process but tests.
    """
    path = directory / ".env"
    if not path.is_file():
        return dict(environ)
    # A bare NAME line (no "=") reads as None: not a setting.
    from_file = {name: value for name, value in dotenv_values(path).items() if value is not None}
    return {**from_file, **environ}


def setting(
    default: str | Callable[[Path], str] = "",
    parse: Callable[[str, str], Any] | None = None,
    variable: str | None = None,
) -> Any:
    """A field of `Settings`: the variable's default (as written in the environment,
    or a function of the instance folder, used when the variable is unset or empty),
    its parser (else the field's type decides) and the variable's name if not the field's."""
    return field(metadata={"default": default, "parse": parse, "variable": variable})


@dataclass(frozen=True)
class Settings:
    """Every setting, typed; each field is read from the environment variable of its name.

    Built once per process by `load_settings` (called by `create_app`, which keeps it
    in `app.extensions["settings"]`); read with `settings()` at the edge (views,
    jobs, CLI) and passed down as an argument below it.
    """

    # NEWSLETTER_DEV=1, or `newsletter dev`: embedded defaults, no secrets needed.
    DEV: bool = setting("0", variable="NEWSLETTER_DEV")
    # Seconds between two dispatch rounds of `newsletter dev`'s embedded scheduler
    # (a confirmed reader's digest of the demo day goes out in the next round).
    DEV_DISPATCH_SECONDS: float = setting("15", _seconds)
    # Required outside dev mode (checked by `load_settings`).
    SECRET_KEY: str = setting()
    # Where the data lives. SQLite in the instance folder needs no server.
    DATABASE_URL: str = setting(
        lambda instance: f"sqlite:///{instance / 'newsletter.sqlite3'}",
        lambda _name, value: _database_url(value),
    )
    # Unset: jobs run in-process right away, no Redis needed.
    REDIS_URL: str | None = setting(parse=lambda _name, value: _redis_url(value))
    # Absolute links in emails are built from this, never from the request.
    BASE_URL: str = setting("http://127.0.0.1:5000", _url)
    # Mail.
    MAIL_FROM: str = setting("arXiv digest <digest@localhost>")
    SMTP_HOST: str | None = setting()
    SMTP_PORT: int = setting("587")
    SMTP_USERNAME: str | None = setting()
    SMTP_PASSWORD: str | None = setting()
    SMTP_SECURITY: str = setting("starttls", _smtp_security)
    SMTP_TIMEOUT: float = setting("30")
    # 0 = no throttle; otherwise at most this many messages per second per worker.
    SMTP_MAX_PER_SECOND: float = setting("0")
    # With SMTP_HOST unset, messages are written here and shown at /dev/outbox.
    OUTBOX_DIR: str = setting(lambda instance: str(instance / "outbox"))
    LIST_UNSUBSCRIBE_MAILTO: str | None = setting()
    DKIM_DOMAIN: str | None = setting()
    DKIM_SELECTOR: str | None = setting()
    DKIM_PRIVATE_KEY_PATH: str | None = setting()
    # Hard bounces (5xx at RCPT/DATA) after which a subscriber is suppressed.
    BOUNCE_LIMIT: int = setting("3")
    # A mailbox the relay returns bounces and complaints to (the envelope sender's),
    # read by every poll: imaps://user:password@host:993/INBOX (imap:// only for a
    # server on this machine). Unset: no mailbox is read (worker/bounces/).
    BOUNCE_IMAP_URL: str | None = setting(parse=_imap_url)
    # SendGrid's Event Webhook verification key (base64, from its Mail Settings);
    # POST /webhooks/sendgrid is off (404) unless set.
    SENDGRID_WEBHOOK_PUBLIC_KEY: str | None = setting(parse=_sendgrid_key)
    # Reconnects after a lost or refused connection (and, for account emails,
    # retries after a 4xx; a digest's 4xx defers its row instead), with
    # exponential backoff from SMTP_RETRY_DELAY seconds (1, 2, 4 s ...).
    SMTP_RETRIES: int = setting("3")
    SMTP_RETRY_DELAY: float = setting("1")
    # A claimed delivery's lease: its worker's heartbeat renews it every third
    # of this; once it lapses (the worker died) any draining worker takes the row.
    DELIVERY_LEASE_SECONDS: int = setting("120")
    # Rows one worker claims at a time (one statement) and sends over one connection.
    DELIVERY_BATCH_SIZE: int = setting("100")
    # Drain jobs a dispatch queues for a day (at most): one per worker that should send.
    DELIVERY_SEND_JOBS: int = setting("4")
    # A row deferred by a 4xx reply waits this many seconds, doubled per attempt.
    DELIVERY_RETRY_SECONDS: int = setting("300")
    # How long a worker retries recording a sent row while the database is
    # unreachable before it stops (the row is then resent once after its lease).
    DELIVERY_DB_RETRY_SECONDS: float = setting("60")
    # Claims of one delivery (temporary failures, dead workers) before it is marked failed.
    DELIVERY_MAX_ATTEMPTS: int = setting("5")
    # Digest.
    DIGEST_MAX_PER_KEYWORD: int = setting("25")
    DIGEST_SEND_EMPTY: bool = setting("0")
    # arXiv: comma-separated archive groups, one RSS request each (DEFAULT_ARCHIVE_GROUPS).
    ARXIV_ARCHIVE_GROUPS: tuple[str, ...] = setting(parse=_archive_groups)
    ARXIV_RSS_URL: str = setting("https://rss.arxiv.org/rss/", _directory_url)
    ARXIV_OAI_URL: str = setting("https://oaipmh.arxiv.org/oai")
    # arXiv asks for one request every 3 s from a whole deployment.
    ARXIV_MIN_INTERVAL: float = setting("3")
    ARXIV_CONTACT: str = setting("admin@localhost")
    ARXIV_TIMEOUT: float = setting("30")
    ARXIV_RETRIES: int = setting("5")
    # First retry delay in seconds; doubled per attempt, with jitter (worker/arxiv/client.py).
    ARXIV_BACKOFF: float = setting("5")
    # Hours after a listing date's feed rebuild (00:00 ET) that ingest waits for
    # every group's feed to be full (not empty, not far below its usual size);
    # then the day completes with what it has, with a warning (worker/arxiv/ingest.py).
    INGEST_COMPLETE_DEADLINE_HOURS: float = setting("6", _hours)
    # Translation.
    TRANSLATION_BACKEND: str = setting("none", _translation_backend)
    OPENAI_BASE_URL: str = setting("https://api.openai.com/v1", _url)
    OPENAI_API_KEY: str | None = setting()
    TRANSLATION_MODEL: str = setting("gpt-4o-mini")
    # Bilingual subscribers get en+<this code>; a glossary_<code>.tsv in worker/translation/data/ is used.
    TRANSLATION_LANGUAGE: str = setting("zh", _language_code)
    # The language as the model is told it; known for common codes (zh = Simplified Chinese).
    TRANSLATION_LANGUAGE_NAME: str | None = setting()
    # Papers per request (one JSON array); lower it for small local models.
    TRANSLATION_BATCH_SIZE: int = setting("4")
    # Retries of one request after a 429, 5xx, timeout or refused connection,
    # backing off TRANSLATION_RETRY_BACKOFF * 2^n seconds, with jitter, and never
    # less than a Retry-After (worker/http.py).
    TRANSLATION_RETRIES: int = setting("4")
    TRANSLATION_RETRY_BACKOFF: float = setting("2")
    TRANSLATION_DEADLINE_MINUTES: int = setting("60")
    TRANSLATION_CONCURRENCY: int = setting("4")
    TRANSLATION_REQUESTS_PER_MINUTE: int = setting("60")
    # Tokens (as the endpoint reports them) per UTC day; 0 = no limit. Past it,
    # papers stay English-only that day and one warning is logged.
    TRANSLATION_DAILY_TOKEN_BUDGET: int = setting("2000000")
    # An operator's extra glossary (term<TAB>translation lines), overriding the shipped one.
    TRANSLATION_GLOSSARY_PATH: str | None = setting()
    TRANSLATION_TIMEOUT: float = setting("120")
    # Sign-up rate limits: attempts in any hour (newsletter/ratelimit.py).
    SIGNUP_LIMIT_PER_IP: int = setting("20")
    SIGNUP_LIMIT_PER_ADDRESS: int = setting("3")
    # Keyword previews an hour per IP (newsletter/preview.py); the page asks
    # again as the reader types (debounced), so it is more generous than sign-up.
    PREVIEW_LIMIT_PER_IP: int = setting("600")
    # Number of proxies in front of gunicorn whose X-Forwarded-For to trust.
    TRUSTED_PROXIES: int = setting("0")
    EMAIL_CHECK_DELIVERABILITY: bool = setting("0")
    LOG_LEVEL: str = setting("INFO", lambda _name, value: value.upper())
    # text (human-readable lines) | json (one JSON object per line, for a log collector).
    LOG_FORMAT: str = setting("text", _log_format)
    # GET /metrics (Prometheus) is off (404) unless set; scrapers then send
    # "Authorization: Bearer <token>".
    METRICS_TOKEN: str | None = setting()
    # GET /admin/ (the operator's status page) is off (404) unless set; then HTTP basic
    # auth, any user name with this password, over https (or from this machine).
    ADMIN_PASSWORD: str | None = setting()
    # /healthz fails when the listing date after the latest complete one is still
    # incomplete this many hours past ingest's deadline (weekends and holidays never count).
    HEALTH_LISTING_GRACE_HOURS: float = setting("2")
    # /healthz fails when a delivery due to be sent has been queued longer than this.
    HEALTH_QUEUED_MAX_MINUTES: int = setting("120")


SETTING_NAMES = frozenset(f.name for f in fields(Settings))


def config_warnings(settings: Settings) -> list[str]:
    """What is allowed but wrong in these settings; `create_app` logs it, `newsletter status` shows it."""
    warnings = []
    if not settings.DEV and not settings.BASE_URL.startswith("https://"):
        warnings.append(
            f"BASE_URL is {settings.BASE_URL!r}, not https: the one-click unsubscribe URL in "
            "every digest must be https (RFC 8058) and links carry tokens in the clear; "
            "serve the site over TLS and set BASE_URL=https://..."
        )
    return warnings


def load_settings(environ: Mapping[str, str], instance_path: str, dev: bool) -> Settings:
    """Read every setting from `environ`; raise ConfigError on a missing secret or a bad value."""
    instance = Path(instance_path)
    dev = dev or _bool("NEWSLETTER_DEV", environ.get("NEWSLETTER_DEV", "0").strip())
    secret_key = environ.get("SECRET_KEY", "").strip()
    if not secret_key:
        if not dev:
            raise ConfigError("SECRET_KEY is required outside dev mode (see .env.example)")
        # Dev only: a fixed key so links in the dev outbox survive a restart.
        secret_key = "dev-only-insecure-secret-key"
    values: dict[str, Any] = {"DEV": dev, "SECRET_KEY": secret_key}
    for item in fields(Settings):
        if item.name in values:
            continue
        name = item.metadata["variable"] or item.name
        default = item.metadata["default"]
        value = environ.get(name, "" if callable(default) else default).strip()
        if callable(default) and not value:
            value = default(instance)
        parse = item.metadata["parse"] or _PARSERS[item.type]
        values[item.name] = parse(name, value)
    return Settings(**values)


def settings(app: Flask | None = None) -> Settings:
    """The settings of `app` (by default the current app), as `create_app` built them."""
    found: Settings = (app or current_app).extensions["settings"]
    return found
