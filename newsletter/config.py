"""Every setting the service reads, from the environment, in one place.

`load_config` is called once by `create_app`; nothing else reads os.environ.
`read_environment` adds a `.env` file in the working directory beneath it.
Each setting has a safe development default except the production secrets,
which have none: the app refuses to start without them outside dev mode.
Mirrored, with comments, in `.env.example`.
"""

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


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


# Archives of the whole of arXiv, grouped so each RSS request stays well below
# the feed's 2,000-item cap (a capped feed silently drops items). A full day of
# all archives is ~1,500-2,500 items, cs alone up to ~1,200.
DEFAULT_ARCHIVE_GROUPS = (
    "cs",
    "math+math-ph+nlin+q-bio+q-fin+econ",
    "astro-ph+cond-mat+gr-qc+hep-ex+hep-lat+hep-ph+hep-th+nucl-ex+nucl-th",
    "physics+quant-ph+stat+eess",
)


def _bool(name: str, value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {value!r}")


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, got {value!r}")
    return value


def _database_url(value: str) -> str:
    """The URL if SQLAlchemy can read it and has its dialect, else a ConfigError."""
    try:
        make_url(value).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(
            "DATABASE_URL is not a database URL such as "
            "postgresql+psycopg://user:password@host/name or sqlite:///path/to/file.sqlite3"
        ) from None
    return value


def _redis_url(value: str) -> str | None:
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            "REDIS_URL is not a Redis URL such as redis://host:6379/0 (or rediss://, unix://)"
        )
    return value or None


def config_warnings(config: dict) -> list[str]:
    """What is allowed but wrong in these settings; `create_app` logs it, `newsletter status` shows it."""
    warnings = []
    if not config["DEV"] and not config["BASE_URL"].startswith("https://"):
        warnings.append(
            f"BASE_URL is {config['BASE_URL']!r}, not https: the one-click unsubscribe URL in "
            "every digest must be https (RFC 8058) and links carry tokens in the clear; "
            "serve the site over TLS and set BASE_URL=https://..."
        )
    return warnings


def load_config(environ: dict[str, str], instance_path: str, dev: bool) -> dict:
    """Read every setting from `environ`; raise ConfigError on a missing secret."""
    env = lambda name, default="": environ.get(name, default).strip()  # noqa: E731
    instance = Path(instance_path)
    dev = dev or _bool("NEWSLETTER_DEV", env("NEWSLETTER_DEV", "0"))

    secret_key = env("SECRET_KEY")
    if not secret_key:
        if not dev:
            raise ConfigError("SECRET_KEY is required outside dev mode (see .env.example)")
        # Dev only: a fixed key so links in the dev outbox survive a restart.
        secret_key = "dev-only-insecure-secret-key"

    smtp_security = env("SMTP_SECURITY", "starttls").lower()
    if smtp_security not in ("none", "starttls", "ssl"):
        raise ConfigError("SMTP_SECURITY must be none, starttls or ssl")
    translation_backend = env("TRANSLATION_BACKEND", "none").lower()
    if translation_backend not in ("none", "openai", "recorded"):
        raise ConfigError("TRANSLATION_BACKEND must be none, openai or recorded")
    translation_language = env("TRANSLATION_LANGUAGE", "zh").lower()
    # It names a glossary file (worker/translation/data/glossary_<code>.tsv): a code, never a path.
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z]{2,4})?", translation_language):
        raise ConfigError("TRANSLATION_LANGUAGE must be a language code such as zh or ja")

    bounce_imap_url = env("BOUNCE_IMAP_URL") or None
    imap = urlsplit(bounce_imap_url or "")
    if bounce_imap_url and (
        imap.scheme not in ("imap", "imaps") or not imap.hostname or not imap.username
    ):
        raise ConfigError("BOUNCE_IMAP_URL must be imaps://user:password@host:993/INBOX")
    sendgrid_key = env("SENDGRID_WEBHOOK_PUBLIC_KEY") or None
    if sendgrid_key and not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", sendgrid_key):
        raise ConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY must be the base64 key SendGrid shows")

    groups = env("ARXIV_ARCHIVE_GROUPS")
    archive_groups = (
        tuple(g.strip() for g in groups.split(",") if g.strip())
        if groups
        else DEFAULT_ARCHIVE_GROUPS
    )
    ingest_deadline = _float(
        "INGEST_COMPLETE_DEADLINE_HOURS", env("INGEST_COMPLETE_DEADLINE_HOURS", "6")
    )
    if ingest_deadline < 0:
        raise ConfigError("INGEST_COMPLETE_DEADLINE_HOURS must be 0 or more hours")

    return {
        "DEV": dev,
        "SECRET_KEY": secret_key,
        # Where the data lives. SQLite in the instance folder needs no server.
        "DATABASE_URL": _database_url(
            env("DATABASE_URL") or f"sqlite:///{instance / 'newsletter.sqlite3'}"
        ),
        # Unset: jobs run in-process right away, no Redis needed.
        "REDIS_URL": _redis_url(env("REDIS_URL")),
        # Absolute links in emails are built from this, never from the request.
        "BASE_URL": env("BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        # Mail.
        "MAIL_FROM": env("MAIL_FROM", "arXiv digest <digest@localhost>"),
        "SMTP_HOST": env("SMTP_HOST") or None,
        "SMTP_PORT": _int("SMTP_PORT", env("SMTP_PORT", "587")),
        "SMTP_USERNAME": env("SMTP_USERNAME") or None,
        "SMTP_PASSWORD": env("SMTP_PASSWORD") or None,
        "SMTP_SECURITY": smtp_security,
        "SMTP_TIMEOUT": _float("SMTP_TIMEOUT", env("SMTP_TIMEOUT", "30")),
        # 0 = no throttle; otherwise at most this many messages per second per worker.
        "SMTP_MAX_PER_SECOND": _float("SMTP_MAX_PER_SECOND", env("SMTP_MAX_PER_SECOND", "0")),
        # With SMTP_HOST unset, messages are written here and shown at /dev/outbox.
        "OUTBOX_DIR": env("OUTBOX_DIR") or str(instance / "outbox"),
        "LIST_UNSUBSCRIBE_MAILTO": env("LIST_UNSUBSCRIBE_MAILTO") or None,
        "DKIM_DOMAIN": env("DKIM_DOMAIN") or None,
        "DKIM_SELECTOR": env("DKIM_SELECTOR") or None,
        "DKIM_PRIVATE_KEY_PATH": env("DKIM_PRIVATE_KEY_PATH") or None,
        # Hard bounces (5xx at RCPT/DATA) after which a subscriber is suppressed.
        "BOUNCE_LIMIT": _int("BOUNCE_LIMIT", env("BOUNCE_LIMIT", "3")),
        # A mailbox the relay returns bounces and complaints to (the envelope sender's),
        # read by every poll: imaps://user:password@host:993/INBOX (imap:// only for a
        # server on this machine). Unset: no mailbox is read (worker/bounces/).
        "BOUNCE_IMAP_URL": bounce_imap_url,
        # SendGrid's Event Webhook verification key (base64, from its Mail Settings);
        # POST /webhooks/sendgrid is off (404) unless set.
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_key,
        # Reconnects after a lost or refused connection (and, for account emails,
        # retries after a 4xx; a digest's 4xx defers its row instead), with
        # exponential backoff from SMTP_RETRY_DELAY seconds (1, 2, 4 s ...).
        "SMTP_RETRIES": _int("SMTP_RETRIES", env("SMTP_RETRIES", "3")),
        "SMTP_RETRY_DELAY": _float("SMTP_RETRY_DELAY", env("SMTP_RETRY_DELAY", "1")),
        # A claimed delivery's lease: its worker's heartbeat renews it every third
        # of this; once it lapses (the worker died) any draining worker takes the row.
        "DELIVERY_LEASE_SECONDS": _int(
            "DELIVERY_LEASE_SECONDS", env("DELIVERY_LEASE_SECONDS", "120")
        ),
        # Rows one worker claims at a time (one statement) and sends over one connection.
        "DELIVERY_BATCH_SIZE": _int("DELIVERY_BATCH_SIZE", env("DELIVERY_BATCH_SIZE", "100")),
        # Drain jobs a dispatch queues for a day (at most): one per worker that should send.
        "DELIVERY_SEND_JOBS": _int("DELIVERY_SEND_JOBS", env("DELIVERY_SEND_JOBS", "4")),
        # A row deferred by a 4xx reply waits this many seconds, doubled per attempt.
        "DELIVERY_RETRY_SECONDS": _int(
            "DELIVERY_RETRY_SECONDS", env("DELIVERY_RETRY_SECONDS", "300")
        ),
        # How long a worker retries recording a sent row while the database is
        # unreachable before it stops (the row is then resent once after its lease).
        "DELIVERY_DB_RETRY_SECONDS": _float(
            "DELIVERY_DB_RETRY_SECONDS", env("DELIVERY_DB_RETRY_SECONDS", "60")
        ),
        # Claims of one delivery (temporary failures, dead workers) before it is marked failed.
        "DELIVERY_MAX_ATTEMPTS": _int("DELIVERY_MAX_ATTEMPTS", env("DELIVERY_MAX_ATTEMPTS", "5")),
        # Digest.
        "DIGEST_MAX_PER_KEYWORD": _int(
            "DIGEST_MAX_PER_KEYWORD", env("DIGEST_MAX_PER_KEYWORD", "25")
        ),
        "DIGEST_SEND_EMPTY": _bool("DIGEST_SEND_EMPTY", env("DIGEST_SEND_EMPTY", "0")),
        # arXiv.
        "ARXIV_ARCHIVE_GROUPS": archive_groups,
        "ARXIV_RSS_URL": env("ARXIV_RSS_URL", "https://rss.arxiv.org/rss/").rstrip("/") + "/",
        "ARXIV_OAI_URL": env("ARXIV_OAI_URL", "https://oaipmh.arxiv.org/oai"),
        # arXiv asks for one request every 3 s from a whole deployment.
        "ARXIV_MIN_INTERVAL": _float("ARXIV_MIN_INTERVAL", env("ARXIV_MIN_INTERVAL", "3")),
        "ARXIV_CONTACT": env("ARXIV_CONTACT", "admin@localhost"),
        "ARXIV_TIMEOUT": _float("ARXIV_TIMEOUT", env("ARXIV_TIMEOUT", "30")),
        "ARXIV_RETRIES": _int("ARXIV_RETRIES", env("ARXIV_RETRIES", "5")),
        # First retry delay in seconds; doubled per attempt, with jitter (worker/arxiv/client.py).
        "ARXIV_BACKOFF": _float("ARXIV_BACKOFF", env("ARXIV_BACKOFF", "5")),
        # Hours after a listing date's feed rebuild (00:00 ET) that ingest waits for
        # every group's feed to be full (not empty, not far below its usual size);
        # then the day completes with what it has, with a warning (worker/arxiv/ingest.py).
        "INGEST_COMPLETE_DEADLINE_HOURS": ingest_deadline,
        # Translation.
        "TRANSLATION_BACKEND": translation_backend,
        "OPENAI_BASE_URL": env("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/"),
        "OPENAI_API_KEY": env("OPENAI_API_KEY") or None,
        "TRANSLATION_MODEL": env("TRANSLATION_MODEL", "gpt-4o-mini"),
        # Bilingual subscribers get en+<this code>; a glossary_<code>.tsv in worker/translation/data/ is used.
        "TRANSLATION_LANGUAGE": translation_language,
        # The language as the model is told it; known for common codes (zh = Simplified Chinese).
        "TRANSLATION_LANGUAGE_NAME": env("TRANSLATION_LANGUAGE_NAME") or None,
        # Papers per request (one JSON array); lower it for small local models.
        "TRANSLATION_BATCH_SIZE": _int(
            "TRANSLATION_BATCH_SIZE", env("TRANSLATION_BATCH_SIZE", "4")
        ),
        # Retries of one request after a 429, 5xx, timeout or refused connection,
        # backing off TRANSLATION_RETRY_BACKOFF * 2^n seconds, with jitter, and never
        # less than a Retry-After (worker/http.py).
        "TRANSLATION_RETRIES": _int("TRANSLATION_RETRIES", env("TRANSLATION_RETRIES", "4")),
        "TRANSLATION_RETRY_BACKOFF": _float(
            "TRANSLATION_RETRY_BACKOFF", env("TRANSLATION_RETRY_BACKOFF", "2")
        ),
        "TRANSLATION_DEADLINE_MINUTES": _int(
            "TRANSLATION_DEADLINE_MINUTES", env("TRANSLATION_DEADLINE_MINUTES", "60")
        ),
        "TRANSLATION_CONCURRENCY": _int(
            "TRANSLATION_CONCURRENCY", env("TRANSLATION_CONCURRENCY", "4")
        ),
        "TRANSLATION_REQUESTS_PER_MINUTE": _int(
            "TRANSLATION_REQUESTS_PER_MINUTE", env("TRANSLATION_REQUESTS_PER_MINUTE", "60")
        ),
        # Tokens (as the endpoint reports them) per UTC day; 0 = no limit. Past it,
        # papers stay English-only that day and one warning is logged.
        "TRANSLATION_DAILY_TOKEN_BUDGET": _int(
            "TRANSLATION_DAILY_TOKEN_BUDGET", env("TRANSLATION_DAILY_TOKEN_BUDGET", "2000000")
        ),
        # An operator's extra glossary (term<TAB>translation lines), overriding the shipped one.
        "TRANSLATION_GLOSSARY_PATH": env("TRANSLATION_GLOSSARY_PATH") or None,
        "TRANSLATION_TIMEOUT": _float("TRANSLATION_TIMEOUT", env("TRANSLATION_TIMEOUT", "120")),
        # Sign-up rate limits: attempts in any hour (newsletter/ratelimit.py).
        "SIGNUP_LIMIT_PER_IP": _int("SIGNUP_LIMIT_PER_IP", env("SIGNUP_LIMIT_PER_IP", "20")),
        "SIGNUP_LIMIT_PER_ADDRESS": _int(
            "SIGNUP_LIMIT_PER_ADDRESS", env("SIGNUP_LIMIT_PER_ADDRESS", "3")
        ),
        # Keyword previews an hour per IP (newsletter/preview.py); the page asks
        # again as the reader types (debounced), so it is more generous than sign-up.
        "PREVIEW_LIMIT_PER_IP": _int("PREVIEW_LIMIT_PER_IP", env("PREVIEW_LIMIT_PER_IP", "600")),
        # Number of proxies in front of gunicorn whose X-Forwarded-For to trust.
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", env("TRUSTED_PROXIES", "0")),
        "EMAIL_CHECK_DELIVERABILITY": _bool(
            "EMAIL_CHECK_DELIVERABILITY", env("EMAIL_CHECK_DELIVERABILITY", "0")
        ),
        "LOG_LEVEL": env("LOG_LEVEL", "INFO").upper(),
        # text (human-readable lines) | json (one JSON object per line, for a log collector).
        "LOG_FORMAT": _choice("LOG_FORMAT", env("LOG_FORMAT", "text").lower(), ("text", "json")),
        # GET /metrics (Prometheus) is off (404) unless set; scrapers then send
        # "Authorization: Bearer <token>".
        "METRICS_TOKEN": env("METRICS_TOKEN") or None,
        # /healthz fails when the listing date after the latest complete one is still
        # incomplete this many hours past ingest's deadline (weekends and holidays never count).
        "HEALTH_LISTING_GRACE_HOURS": _float(
            "HEALTH_LISTING_GRACE_HOURS", env("HEALTH_LISTING_GRACE_HOURS", "2")
        ),
        # /healthz fails when a delivery due to be sent has been queued longer than this.
        "HEALTH_QUEUED_MAX_MINUTES": _int(
            "HEALTH_QUEUED_MAX_MINUTES", env("HEALTH_QUEUED_MAX_MINUTES", "120")
        ),
    }
