"""The operator's subscriber CSV file, read and checked row by row (pure but for `read_file`).

Used by `newsletter subscribers import` (newsletter/cli/subscribers.py reads the file,
newsletter/subscriber_import.py stores what passes) and by `subscribers export`
(newsletter/subscriber_admin.py writes these columns). Owns the file's shape
(header, encoding, CSV quoting, size) and validating each row with the sign-up
form's own cleaners (newsletter/forms.py), so an import accepts exactly what
the form accepts.
"""

import csv
import io
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from newsletter import forms

REQUIRED_COLUMNS = ("email", "keywords", "language", "timezone")
OPTIONAL_COLUMNS = ("delivery_hour", "include_replacements", "tldr", "frequency", "weekday")
# The weekday column: a name ("monday", "Mon", any case) or the form's 0 (Monday) to 6.
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Optional columns read as a checkbox of the form: true or false (empty: false).
_FLAGS = ("include_replacements", "tldr")
# The file is read whole; far above any real list (100,000 rows are ~20 MB).
MAX_FILE_BYTES = 512 * 1024 * 1024
# No form field comes close (an address <= 254, 20 keyword lines of <= 100):
# a longer field means this is not a subscriber list.
MAX_FIELD_CHARS = 100_000
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"", "0", "false", "no", "off", "n"}


class ImportFileError(Exception):
    """The file as a whole cannot be imported (its encoding, header or shape)."""


@dataclass
class Candidate:
    """One valid row, ready to store."""

    line: int
    values: dict
    keywords: list[str]


@dataclass
class Rejection:
    line: int
    reason: str


def read_file(path: str) -> bytes:
    """The file's bytes, or ImportFileError if it cannot be read or is too large."""
    try:
        with open(path, "rb") as file:
            # One byte over the limit tells; a huge file is never read whole.
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ImportFileError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(f"{path}: more than {MAX_FILE_BYTES:,} bytes; import it in parts")
    return data


def decode_file(data: bytes, name: str) -> str:
    """The file's text; refuse binary data and anything that is not UTF-8."""
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise ImportFileError(f"{name}: line {line} holds a NUL byte; this is not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportFileError(
            f"{name}: line {line} is not UTF-8 (byte {error.start}); save the file as UTF-8"
        ) from None


def read_header(row: list[str], name: str) -> list[str]:
    """The column names, checked against the ones we know."""
    columns = [column.strip().lower() for column in row]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    expected = ",".join(REQUIRED_COLUMNS) + f" (optional: {', '.join(OPTIONAL_COLUMNS)})"
    if missing or unknown or repeated:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown {', '.join(_shorten(c) for c in unknown[:5])}")
        if repeated:
            problems.append(f"repeated {', '.join(repeated)}")
        raise ImportFileError(f"{name}: line 1 is not the header {expected}: {'; '.join(problems)}")
    return columns


def csv_records(text: str, name: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each record; a multi-line quoted field counts its lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ImportFileError(
                f"{name}: line {start}: not readable as CSV ({error}); "
                "fields holding commas, quotes or line breaks must be in double quotes"
            ) from None
        if any(len(value) > MAX_FIELD_CHARS for value in record):
            raise ImportFileError(
                f"{name}: line {start} holds a field of more than {MAX_FIELD_CHARS:,} "
                "characters; this is not a subscriber list"
            )
        yield start, record
        start = reader.line_num + 1


def validate_row(
    line: int,
    columns: list[str],
    record: list[str],
    offered_languages: Collection[str],
    check_deliverability: bool,
) -> tuple[Candidate | None, str | None]:
    """A Candidate, or the reason the row is refused (the form's messages)."""
    if len(record) != len(columns):
        return None, f"{len(record)} fields, the header has {len(columns)}"
    form = dict(zip(columns, record, strict=True))
    for name in _FLAGS:
        flag = form.get(name, "").strip().lower()
        if flag not in _TRUE | _FALSE:
            return None, f"{name}: {_shorten(flag)!r} is neither true nor false"
        # The form's checkbox sends "on" when ticked.
        form[name] = "on" if flag in _TRUE else ""
    form["weekday"] = weekday_number(form.get("weekday", ""))
    result = forms.read_settings(form, offered_languages)
    email, error = forms.clean_email(form["email"], check_deliverability)
    if error:
        result.errors = {"email": error, **result.errors}
    if result.errors:
        # The form lists each bad keyword line on a line of its own; a report line is one line.
        return None, "; ".join(
            f"{name}: {' '.join(message.splitlines())}" for name, message in result.errors.items()
        )
    assert email is not None  # clean_email gives an address whenever it gives no error
    values = {
        "email": email,
        "email_key": email.casefold(),
        **{name: result.values[name] for name in forms.SETTING_FIELDS},
    }
    return Candidate(line, values, result.values["keywords"]), None


def weekday_number(raw: str) -> str:
    """A weekday's name (or its first three letters) as the form's digit; anything else as is."""
    value = raw.strip().lower()
    for number, name in enumerate(WEEKDAY_NAMES):
        if value in (name, name[:3]):
            return str(number)
    return raw


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
