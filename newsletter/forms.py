"""Validation of the sign-up and manage forms: raw strings in, clean values or
one error message per field out. Pure; the views do the I/O.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

from worker.matching import KeywordError, normalize_keyword_line, parse_keyword

MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 100
MAX_EMAIL_LENGTH = 254
LANGUAGES = {"en": "English", "en+zh": "English + 简体中文"}


@dataclass
class FormResult:
    values: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _unreadable(value: str) -> str | None:
    """A message if `value` holds bytes that were not UTF-8 or control characters."""
    if "\ufffd" in value:
        return "contains characters that could not be read (the text was not valid UTF-8)"
    for char in value:
        if char in "\r\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return "contains control or invisible characters"
    return None


def clean_email(raw: str, check_deliverability: bool) -> tuple[str | None, str | None]:
    """(normalised address, None) or (None, error)."""
    value = raw.strip()
    if not value:
        return None, "Enter your email address."
    if len(value) > MAX_EMAIL_LENGTH:
        return None, "That address is too long."
    if any(c in value for c in "\r\n") or _unreadable(value):
        return None, "That is not a valid email address."
    try:
        # No SMTPUTF8: relays that lack it would bounce such addresses, so the
        # local part must be ASCII and the domain is kept in its ASCII (IDNA) form.
        result = validate_email(
            value, check_deliverability=check_deliverability, allow_smtputf8=False
        )
    except EmailNotValidError as error:
        return None, f"That is not a valid email address: {error}"
    return result.ascii_email, None


def clean_keywords(raw: str) -> tuple[list[str] | None, str | None]:
    """Keyword lines trimmed, whitespace collapsed, duplicates (any case) removed."""
    problem = _unreadable(raw.replace("\r", "").replace("\n", ""))
    if problem:
        return None, f"Your keywords {problem}."
    lines = [normalize_keyword_line(line) for line in raw.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None, "Enter at least one keyword line."
    if len(lines) > MAX_KEYWORDS:
        return None, f"At most {MAX_KEYWORDS} keyword lines, please (you entered {len(lines)})."
    keywords: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_KEYWORD_LENGTH:
            return None, f"Line {number} is longer than {MAX_KEYWORD_LENGTH} characters."
        try:
            parse_keyword(line)
        except KeywordError as error:
            return None, f"Line {number} ({_shorten(line)}): {error}"
        if line.casefold() not in seen:
            seen.add(line.casefold())
            keywords.append(line)
    return keywords, None


def _shorten(line: str) -> str:
    return line if len(line) <= 40 else line[:37] + "..."


def clean_timezone(raw: str) -> tuple[str | None, str | None]:
    value = raw.strip() or "UTC"
    if (
        len(value) > 64
        or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", value)
        or value not in _timezones()
    ):
        return None, "Choose a timezone from the list, such as Europe/Berlin or Asia/Shanghai."
    return value, None


_TIMEZONES: frozenset[str] | None = None


def _timezones() -> frozenset[str]:
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = frozenset(available_timezones()) | {"UTC"}
    return _TIMEZONES


def timezone_choices() -> list[str]:
    return sorted(_timezones())


def clean_language(raw: str, offered: list[str]) -> tuple[str | None, str | None]:
    value = raw.strip() or "en"
    if value not in offered:
        return None, "Choose one of the languages offered."
    return value, None


def clean_delivery_hour(raw: str) -> tuple[int | None, str | None]:
    value = raw.strip()
    if value in ("", "asap"):
        return None, None
    if not value.isdigit() or not 0 <= int(value) <= 23:
        return None, "Choose an hour between 0 and 23, or as soon as ready."
    return int(value), None


def read_settings(form, offered_languages: list[str]) -> FormResult:
    """The keyword, language, timezone and delivery fields shared by both forms."""
    result = FormResult()
    for name, cleaner in (
        ("keywords", clean_keywords),
        ("timezone", clean_timezone),
        ("delivery_hour", clean_delivery_hour),
    ):
        value, error = cleaner(form.get(name, ""))
        result.values[name] = value
        if error:
            result.errors[name] = error
    language, error = clean_language(form.get("language", ""), offered_languages)
    result.values["language"] = language
    if error:
        result.errors["language"] = error
    result.values["include_replacements"] = form.get("include_replacements") == "on"
    return result
