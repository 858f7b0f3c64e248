"""Validation of the sign-up and manage forms: raw strings in, clean values or
one error message per field out (the keywords' message has one line per bad
keyword line). Pure; the views do the I/O. Messages are in the page's
language (Flask-Babel's gettext: English outside a request, as for the CLI's import).
"""

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from flask_babel import get_locale
from flask_babel import gettext as _

from newsletter.locales import ENGLISH
from newsletter.models import DAILY, FREQUENCIES, WEEKLY
from worker.digest.matching import KeywordError, normalize_keyword_line, parse_keyword

MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 100
MAX_EMAIL_LENGTH = 254
# The select's values; ASCII only (str.isdigit() is also true for "²" and "१").
HOUR_PATTERN = re.compile(r"[0-9]{1,2}", re.ASCII)
# A weekday as the select sends it: 0 (Monday) to 6, one ASCII digit.
WEEKDAY_PATTERN = re.compile(r"[0-6]", re.ASCII)
# Trimmed around choice values; str.strip() would also accept "7" + U+3000.
ASCII_SPACE = " \t\r\n"
# Zones that name no place: the server's own clock, or tzdata's placeholder.
NOT_PLACES = frozenset({"Factory", "localtime", "posixrules"})


@dataclass
class FormResult:
    values: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _unreadable(value: str) -> str | None:
    """A message if `value` holds control or invisible characters.

    Bytes that are not UTF-8 never get here: the site refuses such a form body
    (newsletter/web.py `check_body`) and the import such a file.
    """
    for char in value:
        if char in "\r\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return _("contains control or invisible characters")
    return None


def clean_email(raw: str, check_deliverability: bool) -> tuple[str | None, str | None]:
    """(normalised address, None) or (None, error)."""
    value = raw.strip()
    if not value:
        return None, _("Enter your email address.")
    if len(value) > MAX_EMAIL_LENGTH:
        return None, _("That address is too long.")
    if any(c in value for c in "\r\n") or _unreadable(value):
        return None, _("That is not a valid email address.")
    # Imported here: email_validator costs ~30 ms of CPU at every process start, and
    # the worker, the scheduler and most commands never read an address from a form.
    from email_validator import EmailNotValidError, validate_email

    try:
        # No SMTPUTF8: relays that lack it would bounce such addresses, so the
        # local part must be ASCII and the domain is kept in its ASCII (IDNA) form.
        result = validate_email(
            value, check_deliverability=check_deliverability, allow_smtputf8=False
        )
    except EmailNotValidError as error:
        if page_language() != ENGLISH:
            # email_validator's reasons are English only: other languages get the sentence.
            return None, _("That is not a valid email address.")
        return None, _("That is not a valid email address: %(reason)s", reason=error)
    return result.ascii_email, None


def page_language() -> str:
    """The language the current page is in: English outside a request (the CLI's import)."""
    locale = get_locale()
    return locale.language if locale is not None else ENGLISH


def clean_keywords(raw: str) -> tuple[list[str] | None, str | None]:
    """Keyword lines trimmed, whitespace collapsed, duplicates (any case) removed.

    Every bad line is reported, one message a line of the error, numbered as
    the line stands in the text box (blank lines count, so the numbers match).
    """
    problem = _unreadable(raw.replace("\r", "").replace("\n", ""))
    if problem:
        return None, _("Your keywords %(problem)s.", problem=problem)
    numbered = [(n, normalize_keyword_line(line)) for n, line in enumerate(raw.splitlines(), 1)]
    numbered = [(n, line) for n, line in numbered if line]
    if not numbered:
        return None, _("Enter at least one keyword line.")
    if len(numbered) > MAX_KEYWORDS:
        return None, _(
            "At most %(most)s keyword lines, please (you entered %(entered)s).",
            most=MAX_KEYWORDS,
            entered=len(numbered),
        )
    keywords: list[str] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in numbered:
        error = keyword_line_error(number, line)
        if error:
            problems.append(error)
        elif line.casefold() not in seen:
            seen.add(line.casefold())
            keywords.append(line)
    if problems:
        return None, "\n".join(problems)
    return keywords, None


def keyword_line_error(number: int, line: str) -> str | None:
    """Why keyword line `number` (normalised) is refused, or None."""
    if len(line) > MAX_KEYWORD_LENGTH:
        return _(
            "Line %(number)s is longer than %(most)s characters.",
            number=number,
            most=MAX_KEYWORD_LENGTH,
        )
    try:
        parse_keyword(line)
    except KeywordError as error:
        return _(
            "Line %(number)s (%(line)s): %(problem)s",
            number=number,
            line=_shorten(line),
            problem=keyword_error_message(error),
        )
    return None


def keyword_error_message(error: KeywordError) -> str:
    """The matcher's refusal in the page's language (the catalogue holds each KeywordError)."""
    return _(error.message, **error.values)


def _shorten(line: str) -> str:
    return line if len(line) <= 40 else line[:37] + "..."


def clean_timezone(raw: str) -> tuple[str | None, str | None]:
    """An IANA zone name from the list, exactly as spelled there; empty means UTC."""
    value = raw.strip() or "UTC"
    if len(value) > 64 or value not in iana_zones():
        return None, _("Choose a timezone from the list, such as Europe/Berlin or Asia/Shanghai.")
    return value, None


@cache
def iana_zones() -> frozenset[str]:
    """IANA's zone names as the tzdata package lists them.

    Not the system's zoneinfo folder: that also holds `localtime` (whatever the
    server's clock says), `posix/...` and `right/...` copies, and `Factory`.
    """
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="ascii").split()
    return frozenset(listed) - NOT_PLACES


def timezone_choices() -> list[str]:
    return sorted(iana_zones())


def clean_language(raw: str, offered: Collection[str]) -> tuple[str | None, str | None]:
    """One of the offered language values (newsletter.languages), exactly."""
    value = raw.strip(ASCII_SPACE) or "en"
    if value not in offered:
        return None, _("Choose one of the languages offered.")
    return value, None


def clean_delivery_hour(raw: str) -> tuple[int | None, str | None]:
    """None (as soon as ready) or an hour 0-23 written in ASCII digits."""
    value = raw.strip(ASCII_SPACE)
    if value in ("", "asap"):
        return None, None
    if not HOUR_PATTERN.fullmatch(value) or not 0 <= int(value) <= 23:
        return None, _("Choose an hour between 0 and 23, or as soon as ready.")
    return int(value), None


def clean_frequency(raw: str) -> tuple[str | None, str | None]:
    """ "daily" (also when empty) or "weekly", exactly."""
    value = raw.strip(ASCII_SPACE) or DAILY
    if value not in FREQUENCIES:
        return None, _("Choose daily or weekly.")
    return value, None


def clean_weekday(raw: str, frequency: str | None) -> tuple[int | None, str | None]:
    """The weekly digest's day, 0 (Monday) to 6 in ASCII digits; may be empty for daily."""
    value = raw.strip(ASCII_SPACE)
    if not value and frequency != WEEKLY:
        return None, None
    if not WEEKDAY_PATTERN.fullmatch(value):
        return None, _("Choose the day of the week for your weekly digest.")
    return int(value), None


# The subscriber settings `read_settings` gives besides the keywords, named as
# Subscriber's columns: what a sign-up stores and an import row carries.
SETTING_FIELDS = (
    "language",
    "timezone",
    "include_replacements",
    "delivery_hour",
    "tldr",
    "frequency",
    "weekday",
)


def read_settings(form, offered_languages: Collection[str]) -> FormResult:
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
    result.values["tldr"] = form.get("tldr") == "on"
    frequency, error = clean_frequency(form.get("frequency", ""))
    weekday, weekday_error = clean_weekday(form.get("weekday", ""), frequency)
    result.values.update(frequency=frequency, weekday=weekday)
    for name, problem in (("frequency", error), ("weekday", weekday_error)):
        if problem:
            result.errors[name] = problem
    return result
