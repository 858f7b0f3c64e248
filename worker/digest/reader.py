"""What the digest core needs to know of a subscriber: `Reader`, and their time zone.

Used by worker/digest/core.py (`DayDigest` takes Readers) and, through it, by
dispatch, sending, translation planning, the digest page, the preview and the
feed, which make a Reader from a subscriber or a ledger row.
"""

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.models import Subscriber

log = logging.getLogger(__name__)


def subscriber_zone(name: str) -> ZoneInfo:
    """The subscriber's timezone; UTC if the name is unknown (validated at sign-up)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        log.warning("unknown timezone %r; using UTC", name)
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class Reader:
    """What a digest needs to know of its subscriber."""

    keywords: tuple[str, ...]
    language: str
    timezone: str
    include_replacements: bool
    # A one-line TL;DR under each title (worker/translation/tldr.py); off: today's digest.
    tldr: bool = False

    @classmethod
    def of(cls, subscriber: Subscriber) -> "Reader":
        return cls(
            keywords=tuple(subscriber.keyword_lines),
            language=subscriber.language,
            timezone=subscriber.timezone,
            include_replacements=subscriber.include_replacements,
            tldr=bool(subscriber.tldr),
        )
