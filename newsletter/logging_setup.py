"""How every process logs: human-readable lines (default) or one JSON object per line.

`configure_logging` is called by `build_app` (web, worker, scheduler, CLI,
tests), so nothing is set up at import. LOG_FORMAT=json makes each line an
object with time, level, logger and message, plus listing_date, job_id,
subscriber_id and delivery_id when they apply: from the record (`extra=`) or
from the context a job sets (`logged_job`, used by worker/jobs.py), so a
line logged deep inside a job still names its listing date.
"""

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from rq import get_current_job

# The fields a line may carry beside its message, in this order.
CONTEXT_FIELDS = ("listing_date", "job_id", "subscriber_id", "delivery_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Names the root handler we install, so a second app in the process reuses it.
HANDLER_NAME = "newsletter"

_context: ContextVar[dict[str, object] | None] = ContextVar("newsletter_log_context", default=None)


def configure_logging(level: str, log_format: str) -> None:
    """Log to stderr at `level` in `log_format` ("text" or "json").

    As `logging.basicConfig`, leaves a root logger alone that someone else
    configured (gunicorn's --log-config, pytest's capture).
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == HANDLER_NAME), None)
    if handler is None:
        if root.handlers:
            return
        handler = logging.StreamHandler()
        handler.set_name(HANDLER_NAME)
        root.addHandler(handler)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root.setLevel(level)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback goes in "exception")."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                entry[name] = value if isinstance(value, int | str) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Within the block, every log line carries these fields (None values are left out)."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {', '.join(sorted(unknown))}")
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


# A job's parameters that name what its lines are about, by the field they fill.
_JOB_PARAMETERS = {"listing_date_iso": "listing_date", "subscriber_id": "subscriber_id"}


def logged_job(func: Callable) -> Callable:
    """Decorate an RQ job so its log lines carry the RQ job id and the listing date or
    subscriber id among its arguments (found by parameter name)."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def job(*args, **kwargs):
        bound = signature.bind_partial(*args, **kwargs).arguments
        fields = {field: bound.get(name) for name, field in _JOB_PARAMETERS.items()}
        current = get_current_job()  # None when run in-process (no Redis)
        with log_context(job_id=current.id if current else None, **fields):
            return func(*args, **kwargs)

    return job
