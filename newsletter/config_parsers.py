"""Parsers of one setting's value, as written in the environment, into its type.

Called by `newsletter.config` (each `Settings` field names its parser, or its type
picks one from `_PARSERS`); each raises `ConfigError` on a malformed value, which
`create_app` turns into a refusal to start.
"""

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


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


def _optional(_name: str, value: str) -> str | None:
    return value or None


def _text(_name: str, value: str) -> str:
    return value


def _url(_name: str, value: str) -> str:
    return value.rstrip("/")


def _directory_url(_name: str, value: str) -> str:
    return value.rstrip("/") + "/"


def _smtp_security(name: str, value: str) -> str:
    if value.lower() not in ("none", "starttls", "ssl"):
        raise ConfigError(f"{name} must be none, starttls or ssl")
    return value.lower()


def _translation_backend(name: str, value: str) -> str:
    if value.lower() not in ("none", "openai", "recorded"):
        raise ConfigError(f"{name} must be none, openai or recorded")
    return value.lower()


def _language_code(name: str, value: str) -> str:
    # It names a glossary file (worker/translation/data/glossary_<code>.tsv): a code, never a path.
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z]{2,4})?", value.lower()):
        raise ConfigError(f"{name} must be a language code such as zh or ja")
    return value.lower()


def _imap_url(name: str, value: str) -> str | None:
    imap = urlsplit(value)
    if value and (imap.scheme not in ("imap", "imaps") or not imap.hostname or not imap.username):
        raise ConfigError(f"{name} must be imaps://user:password@host:993/INBOX")
    return value or None


def _sendgrid_key(name: str, value: str) -> str | None:
    if value and not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", value):
        raise ConfigError(f"{name} must be the base64 key SendGrid shows")
    return value or None


def _archive_groups(_name: str, value: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in value.split(",") if g.strip())
    return groups if value else DEFAULT_ARCHIVE_GROUPS


def _hours(name: str, value: str) -> float:
    hours = _float(name, value)
    if hours < 0:
        raise ConfigError(f"{name} must be 0 or more hours")
    return hours


def _seconds(name: str, value: str) -> float:
    seconds = _float(name, value)
    if seconds <= 0:  # a round every 0 s would spin
        raise ConfigError(f"{name} must be more than 0 seconds")
    return seconds


def _log_format(name: str, value: str) -> str:
    return _choice(name, value.lower(), ("text", "json"))


# A setting read from a variable of another name, or with a default that lives in
# the instance folder, says so; the rest are read from the variable named like the
# field and parsed by the field's type.
_PARSERS: dict[object, Callable[[str, str], Any]] = {
    bool: _bool,
    int: _int,
    float: _float,
    str: _text,
    str | None: _optional,
}
