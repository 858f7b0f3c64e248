"""One subscriber's digest put together from the day's fragments.

Used by worker/digest.py (`DayDigest.render_email`, `render_page`). Owns the
order of a digest: header, each section's heading, entries and "N more"
note, footer; and the size fitting loop: estimate, cut (worker/digest_layout.py),
assemble, measure, cut again. Measuring is a sum of the pieces' known sizes.
The result is segments: the day's shared pieces as they are (the same str
objects for every digest) and small per-subscriber ones (links, numbers).
"""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from markupsafe import escape

import emails
from worker.calendar import announcement_instant
from worker.digest_fragments import (
    NOTHING,
    DayFragments,
    Sized,
    fill,
    fragment,
    hole,
    sized,
)
from worker.digest_layout import (
    HTML_BUDGET,
    Section,
    fit_plan,
    plan_sections,
    refit_plan,
    settle_plan,
)
from worker.digest_text import limit_lines

# Subject lines stay readable; keywords past this many characters become "+N more".
SUBJECT_MAX = 150
# Links are measured at the length of the placeholder links that shared
# renders used to carry, not at their real length: a layout depends only on
# the sections, the same for every subscriber who has them (and as before).
_LINK_SIZES = {
    name: len(f"https://placeholder.invalid/{'0' * 32}/{name}")
    for name in ("manage_url", "unsubscribe_url", "one_click_url", "view_url")
}
# Longer keywords or links could make a text line cross the 998-byte limit
# between pieces; such (hostile) digests are limited as a whole instead.
_SAFE_VALUE = 200


@dataclass(frozen=True)
class Digest:
    subject: str
    text_segments: tuple[str, ...]
    html_segments: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """What one digest is made of: the reader's settings, their sections, the moment, the links."""

    keywords: tuple[str, ...]
    timezone: str
    zone: ZoneInfo
    bilingual: bool
    sections: list[tuple[str, list[str]]]
    generated_at: datetime
    links: dict[str, str]
    max_per_keyword: int | None  # None: the web page, every paper in full


def assemble_digest(fragments: DayFragments, listing_date: date, request: Request) -> Digest:
    """The digest's subject, text and HTML as segments."""
    full_page = request.max_per_keyword is None
    matched: dict[str, list[str]] = {}
    for keyword, ids in request.sections:
        for arxiv_id in ids:
            matched.setdefault(arxiv_id, []).append(keyword)
    entries = {i: fragments.entry(i, request.bilingual, full_page) for i in matched}
    lines = {i: tuple(keywords) for i, keywords in matched.items()}
    plan = plan_sections(request.sections, entries, request.max_per_keyword)
    links = {
        name: Sized(str(escape(url)), _LINK_SIZES.get(name, len(url.encode())))
        for name, url in request.links.items()
    }
    view_url = links["view_url"]
    if not full_page:
        fit_plan(plan)
    numbers = settle_plan(plan)
    content, size = _html_content(fragments, plan, numbers, lines, view_url)
    header = _Header(listing_date, request, plan, len(entries), len(numbers))
    html, size = header.html(fragments, content, size, links, full_page)
    if not full_page:
        # The size estimates are rough: cut by the measured overshoot until it
        # fits (usually zero or one more round).
        for _ in range(8):
            if size <= HTML_BUDGET:
                break
            refit_plan(plan, size)
            numbers = settle_plan(plan)
            content, size = _html_content(fragments, plan, numbers, lines, view_url)
            header = _Header(listing_date, request, plan, len(entries), len(numbers))
            html, size = header.html(fragments, content, size, links, full_page)
    text = header.text(_text_content(fragments, plan, numbers, lines, request.links), full_page)
    if any(len(value) > _SAFE_VALUE for value in (*request.keywords, *request.links.values())):
        text = [limit_lines("".join(text))]
    return Digest(header.subject(), tuple(text), tuple(html))


def _html_content(
    fragments: DayFragments,
    plan: list[Section],
    numbers: dict[str, int],
    lines: dict[str, tuple[str, ...]],
    view_url: Sized,
) -> tuple[list[str], int]:
    out: list[str] = []
    size = 0
    for section in plan:
        heading = fragments.heading_html(section.anchor, section.keyword, section.count)
        out.append(heading.text)
        size += heading.size
        for item in section.items:
            entry = item.entry
            if item.kind == "full":
                title, abstract = fragments.highlighted(entry, lines[entry.arxiv_id])
                values = {
                    "title_html": title,
                    "matched": fragments.matched_html(lines[entry.arxiv_id]),
                    "abstract_html": abstract,
                }
                size += fill(out, fragments.full_html(entry), values)
                continue
            # Where a pointer leads: the full entry in this message, or on the web page.
            page = NOTHING if entry.arxiv_id in numbers else view_url
            if item.kind == "title":
                size += fill(out, fragments.title_html(entry), {"page": page})
            else:
                keyword = fragments.keyword_html(item.first_keyword)
                piece = fragments.above_html(entry)
                size += fill(out, piece, {"page": page, "first_keyword": keyword})
        if section.hidden:
            piece = fragments.hidden_html(section.anchor, section.hidden, section.keyword)
            size += fill(out, piece, {"view_url": view_url})
    return out, size


def _text_content(
    fragments: DayFragments,
    plan: list[Section],
    numbers: dict[str, int],
    lines: dict[str, tuple[str, ...]],
    links: dict[str, str],
) -> list[str]:
    out: list[str] = []
    view_url = Sized(links["view_url"], 0)
    for section in plan:
        out.append(fragments.heading_text(section.keyword, section.count))
        for item in section.items:
            entry = item.entry
            number = numbers.get(entry.arxiv_id)
            if item.kind == "full":
                values = {
                    "number": Sized(str(number), 0),
                    "matched": fragments.matched_text(lines[entry.arxiv_id]),
                }
                fill(out, fragments.full_text(entry), values)
            elif item.kind == "title":
                out.append(fragments.title_text(entry))
            else:
                values = {"first_keyword": Sized(item.first_keyword, 0)}
                if number is not None:
                    values["number"] = Sized(str(number), 0)
                fill(out, fragments.above_text(entry, number is not None), values)
        fill(
            out, fragments.section_end_text(section.anchor, section.hidden), {"view_url": view_url}
        )
    return out


class _Header:
    """The values of the digest's header, footer and subject."""

    def __init__(
        self, listing_date: date, request: Request, plan: list[Section], papers: int, full: int
    ):
        zone = request.zone
        try:
            announced = announcement_instant(listing_date)
        except ValueError:
            announced = None
        self.request = request
        self.plan = plan
        self.values = {
            "listing_date": _day(listing_date),
            "announced_et": _instant(announced) if announced else None,
            "announced_local": _instant(announced.astimezone(zone)) if announced else None,
            "timezone": zone.key if zone.key == request.timezone else "UTC",
            "generated": _instant(request.generated_at.astimezone(zone)),
            "paper_count": papers,
            "full_count": full,
            "papers_word": "paper" if papers == 1 else "papers",
        }

    def html(
        self,
        fragments: DayFragments,
        content: list[str],
        size: int,
        links: dict[str, Sized],
        full_page: bool,
    ) -> tuple[list[str], int]:
        """The whole HTML around `content` (`size` bytes), and its measured size."""
        values = self.values
        summary = fragments.html.summary(
            values["paper_count"],
            values["papers_word"],
            values["full_count"],
            hole("view_url"),
            values["announced_et"],
            values["announced_local"],
            values["timezone"],
            values["generated"],
            self.plan,
        )
        footer = fragments.html.footer(
            self.request.keywords, full_page, {name: hole(name) for name in links}
        )
        count = str(values["paper_count"])
        filled = {
            "paper_count": Sized(count, len(count)),
            "papers_word": Sized(values["papers_word"], len(values["papers_word"])),
            "subject_keywords": sized(str(escape(subject_keywords(self.plan)))),
            "entries": Sized("", size),
        }
        out: list[str] = []
        skeleton = fragments.skeleton(values["listing_date"])
        total = skeleton.size + sum(value.size for value in filled.values())
        for index, part in enumerate(skeleton.parts):
            if index % 2 == 0:
                out.append(part)
            elif part == "entries":
                out.extend(content)
            elif part == "summary":
                total += fill(out, fragment(summary), links)
            elif part == "footer":
                total += fill(out, fragment(footer), links)
            else:
                out.append(filled[part].text)
        return out, total

    def text(self, content: list[str], full_page: bool) -> list[str]:
        """The whole text part around `content`."""
        rendered = emails.render_template(
            "digest/body.txt",
            entries=hole("entries"),
            keywords=self.request.keywords,
            links=self.request.links,
            full_page=full_page,
            **self.values,
        )
        head, _, tail = rendered.partition(str(hole("entries")))
        return [limit_lines(head), *content, limit_lines(tail)]

    def subject(self) -> str:
        subject = emails.render_template(
            "digest/subject.txt",
            listing_date=self.values["listing_date"],
            paper_count=self.values["paper_count"],
            papers_word=self.values["papers_word"],
            subject_keywords=subject_keywords(self.plan),
        )
        # One line whatever the values held (header injection guard).
        return " ".join(subject.split())


def subject_keywords(sections: list[Section]) -> str:
    parts = [f"{s.keyword} ({s.count})" for s in sections]
    shown: list[str] = []
    for n, part in enumerate(parts):
        if shown and len(", ".join(shown + [part])) > SUBJECT_MAX - 60:
            shown.append(f"+{len(parts) - n} more")
            break
        shown.append(part)
    return ", ".join(shown)


def _day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _instant(instant: datetime) -> str:
    return f"{_day(instant.date())}, {instant:%H:%M} {instant.tzname()}"
