"""A digest's header and subject: its dates, counts and keywords as the templates take them.

Used by worker/digest/assembly.py: `header_dates` once per (day, zone, minute),
`header_values` per layout tried, `subject_line` once per digest. Times show as
"Fri 29 May 2026, 20:00 UTC+8": the offset, never a zone abbreviation; in
the chrome's locale (DayFragments.locale), e.g. "2026年5月29日 周五 20:00 UTC+8".
"""

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from newsletter.locales import ENGLISH, lgettext, lngettext, long_day, short_day
from worker.calendar import announcement_instant
from worker.digest.fragments import DayFragments
from worker.digest.layout import Section
from worker.digest.pieces import fill_text

# Subject lines stay readable; keywords past this many characters become "+N more".
SUBJECT_MAX = 150


def subject_line(fragments: DayFragments, header: dict, values: dict[str, str]) -> str:
    """The subject line, from the header's values and `preview_values`'s."""
    piece = fragments.chrome.subject(header["listing_date"], bool(values["subject_keywords"]))
    out: list[str] = []
    fill_text(out, piece, *(values[hole] for hole in piece.holes))
    # One line whatever the values held (header injection guard).
    return " ".join("".join(out).split())


def preview_values(header: dict, plan: list[Section], locale: str = ENGLISH) -> dict[str, str]:
    """What the subject and the HTML's preview show: the count, its word, the keywords."""
    return {
        "paper_count": str(header["paper_count"]),
        "papers_word": header["papers_word"],
        "subject_keywords": subject_keywords(plan, locale),
    }


def header_values(
    dates: tuple[str, str | None, str | None, str, str],
    papers: int,
    full: int,
    locale: str = ENGLISH,
) -> dict:
    """The values of the header (both parts), in a fixed order (a cache key)."""
    listing_date, announced_et, announced_local, timezone, generated = dates
    return {
        "listing_date": listing_date,
        "announced_et": announced_et,
        "announced_local": announced_local,
        "timezone": timezone,
        "generated": generated,
        "paper_count": papers,
        "full_count": full,
        "papers_word": papers_word(locale, papers),
    }


@lru_cache(maxsize=1024)
def papers_word(locale: str, papers: int) -> str:
    """The word after a count of papers ("12 papers", "12 篇论文"): the catalogue's, once per count."""
    return lngettext(locale, "paper", "papers", papers)


def summary_values(header: dict) -> dict:
    """The header line's values: all but the listing date (the skeleton's, once per day)."""
    return {name: value for name, value in header.items() if name != "listing_date"}


@lru_cache(maxsize=4096)
def header_dates(
    listing_date: date,
    zone: ZoneInfo,
    timezone: str,
    generated_at: datetime,
    first_listing_date: date | None = None,
    locale: str = ENGLISH,
) -> tuple[str, str | None, str | None, str, str]:
    """The header's dates, made once per (day, zone, minute) rather than per digest.

    A digest of several listing dates names them as a range ("week of ..."),
    announced when its last one was.
    """
    try:
        announced = announcement_instant(listing_date)
    except ValueError:
        announced = None
    return (
        _span(first_listing_date, listing_date, locale),
        _instant(announced, locale) if announced else None,
        _instant(announced.astimezone(zone), locale) if announced else None,
        zone.key if zone.key == timezone else "UTC",
        _instant(generated_at.astimezone(zone), locale),
    )


def subject_keywords(sections: list[Section], locale: str = ENGLISH) -> str:
    parts = [f"{s.keyword} ({s.count})" for s in sections]
    shown: list[str] = []
    for n, part in enumerate(parts):
        if shown and len(", ".join(shown + [part])) > SUBJECT_MAX - 60:
            shown.append(lngettext(locale, "+%(num)s more", "+%(num)s more", len(parts) - n))
            break
        shown.append(part)
    return ", ".join(shown)


def _span(first: date | None, last: date, locale: str = ENGLISH) -> str:
    """A digest's listing date, or the range of listing dates a weekly one covers."""
    if first is None or first >= last:
        return _day(last, locale)
    days = {"first": short_day(locale, first), "last": _day(last, locale)}
    # "week of" while the range fits in one week; a missed week makes it longer.
    if (last - first).days < 7:
        return lgettext(locale, "week of %(first)s – %(last)s", **days)
    return lgettext(locale, "listing dates %(first)s – %(last)s", **days)


def _day(day: date, locale: str = ENGLISH) -> str:
    return long_day(locale, day)


def _instant(instant: datetime, locale: str = ENGLISH) -> str:
    if locale != ENGLISH:
        return f"{_day(instant.date(), locale)} {instant:%H:%M} {utc_offset(instant)}"
    return f"{_day(instant.date())}, {instant:%H:%M} {utc_offset(instant)}"


def utc_offset(instant: datetime) -> str:
    """The instant's offset from UTC: "UTC+8", "UTC-4", "UTC+5:30", or "UTC".

    Not the zone's abbreviation: Asia/Shanghai's "CST" is also US Central time.
    """
    offset = instant.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset else 0
    if not minutes:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    sign = "+" if minutes > 0 else "-"
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
