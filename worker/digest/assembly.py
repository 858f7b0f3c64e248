"""One subscriber's digest put together from the day's fragments.

Used by worker/digest/core.py (`DayDigest.render_email`, `render_page`). Owns the
order of a digest: header, each section's heading, entries and "N more"
note, footer; and the size fitting loop: estimate, cut (worker/digest/layout.py),
assemble, measure, cut again. Measuring is a sum of the pieces' known sizes.
The result is segments: the day's shared pieces as they are (the same str
objects for every digest) and small per-subscriber ones (links, numbers).
The header's and subject's values (dates, counts, keywords) are
worker/digest/header.py's.
"""

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from worker.digest.chrome import COUNTS, count_values
from worker.digest.entries import Listing
from worker.digest.fragments import DayFragments, FullEntry
from worker.digest.header import (
    header_dates,
    header_values,
    preview_values,
    subject_line,
    summary_values,
)
from worker.digest.keyword_pieces import KeywordPieces
from worker.digest.layout import (
    HTML_BUDGET,
    Section,
    fit_plan,
    matched_lines,
    plan_sections,
    refit_plan,
    settle_plan,
)
from worker.digest.pieces import NOTHING, Sized, escaped, fill, fill_text, sized
from worker.digest.rendered import DigestEmail
from worker.digest.text import limit_lines

# Links are measured at the length of the placeholder links that shared
# renders used to carry, not at their real length: a layout depends only on
# the sections, the same for every subscriber who has them (and as before).
_LINK_SIZES = {
    name: len(f"https://placeholder.invalid/{'0' * 32}/{name}")
    for name in ("manage_url", "unsubscribe_url", "one_click_url", "view_url", "feed_url")
}
# Longer keywords or links could make a text line cross the 998-byte limit between
# pieces; such (hostile) digests are limited as a whole instead.
_SAFE_VALUE = 200


class Request:
    """A digest's makings (not a dataclass: compiled, its __init__ would stay Python)."""

    def __init__(
        self,
        *,
        keywords: tuple[str, ...],
        timezone: str,
        zone: ZoneInfo,
        bilingual: bool,
        sections: list[tuple[str, list[str]]],
        generated_at: datetime,
        links: dict[str, str],
        max_per_keyword: int | None,
        first_listing_date: date | None = None,
        tldr: bool = False,
    ):
        self.keywords = keywords
        self.timezone = timezone
        self.zone = zone
        self.bilingual = bilingual
        self.sections = sections
        self.generated_at = generated_at
        self.links = links
        self.max_per_keyword = max_per_keyword  # None: the web page, every paper in full
        self.first_listing_date = first_listing_date  # weekly: from this date to the day's
        self.tldr = tldr  # TL;DRs under the titles (worker/translation/tldr.py)


def assemble_digest(fragments: DayFragments, listing_date: date, request: Request) -> DigestEmail:
    """The digest's subject, text and HTML as segments."""
    full_page = request.max_per_keyword is None
    lines = matched_lines(request.sections)
    entries = fragments.entries(request.bilingual, full_page, lines, request.tldr)
    plan, numbers, weight = plan_sections(request.sections, entries, request.max_per_keyword)
    links = {
        name: Sized(escaped(url), _LINK_SIZES.get(name, len(url.encode())))
        for name, url in request.links.items()
    }
    dates = header_dates(
        listing_date,
        request.zone,
        request.timezone,
        request.generated_at,
        request.first_listing_date,
        fragments.locale,
    )
    # This digest's keyword lines, looked up once (each is used several times).
    keywords = {keyword: fragments.keyword(keyword) for keyword in request.keywords}
    for keyword, _ in request.sections:
        if keyword not in keywords:
            keywords[keyword] = fragments.keyword(keyword)
    if not full_page and fit_plan(plan, weight):
        plan, numbers = settle_plan(plan)
    header = header_values(dates, len(entries), len(numbers), fragments.locale)
    # What the subject and the HTML's preview show: the same for every layout tried.
    preview = preview_values(header, plan, fragments.locale)
    # Each full entry's pieces, looked up once for both parts and every layout tried.
    full: dict[str, FullEntry] = {}
    html, size = _html(
        fragments, keywords, request, header, preview, plan, numbers, lines, links, full
    )
    if not full_page:
        # The size estimates are rough: cut by the measured overshoot until it
        # fits (usually zero or one more round).
        for _ in range(8):
            if size <= HTML_BUDGET:
                break
            refit_plan(plan, size)
            plan, numbers = settle_plan(plan)
            header = header_values(dates, len(entries), len(numbers), fragments.locale)
            html, size = _html(
                fragments, keywords, request, header, preview, plan, numbers, lines, links, full
            )
    text = _text(fragments, keywords, request, header, plan, numbers, lines, full)
    if max(map(len, (*request.keywords, *request.links.values())), default=0) > _SAFE_VALUE:
        text = [limit_lines("".join(text))]
    return DigestEmail(subject_line(fragments, header, preview), tuple(text), tuple(html))


def _html(
    fragments: DayFragments,
    keywords: dict[str, KeywordPieces],
    request: Request,
    header: dict,
    preview: dict[str, str],
    plan: list[Section],
    numbers: dict[str, int],
    lines: dict[str, tuple[str, ...]],
    links: dict[str, Sized],
    full: dict[str, FullEntry],
) -> tuple[list[str], int]:
    """The HTML as segments, and its measured size: body.mjml's holes filled."""
    out: list[str] = []
    skeleton = fragments.chrome.skeleton(header["listing_date"])
    size = skeleton.size
    for index, name in enumerate(skeleton.holes):
        out.append(skeleton.parts[index])
        if name == "entries":
            view_url = links["view_url"]
            size += _html_entries(out, fragments, keywords, plan, numbers, lines, view_url, full)
        elif name == "summary":
            piece = fragments.chrome.summary(summary_values(header))
            values = {**links, **count_values(header)}
            size += fill(out, piece, *(values[hole] for hole in piece.holes))
        elif name == "section_links":
            for n, section in enumerate(plan, start=1):
                counted = keywords[section.keyword].counted(section.count)
                link = counted.last_link if n == len(plan) else counted.link
                size += fill(out, link, _anchor(section.anchor))
        elif name == "footer_keywords":
            for n, keyword in enumerate(request.keywords, start=1):
                pieces = keywords[keyword]
                item = pieces.last_footer_html if n == len(request.keywords) else pieces.footer_html
                out.append(item.text)
                size += item.size
        elif name == "footer_links":
            piece = fragments.chrome.footer_links(request.max_per_keyword is None)
            size += fill(out, piece, *(links[hole] for hole in piece.holes))
        else:
            value = sized(escaped(preview[name]))
            out.append(value.text)
            size += value.size
    out.append(skeleton.parts[-1])
    return out, size


def _html_entries(
    out: list[str],
    fragments: DayFragments,
    keywords: dict[str, KeywordPieces],
    plan: list[Section],
    numbers: dict[str, int],
    lines: dict[str, tuple[str, ...]],
    view_url: Sized,
    full: dict[str, FullEntry],
) -> int:
    size = 0
    full_entry, short_entry = fragments.full_entry, fragments.short_entry
    list_start, list_end = fragments.chrome.title_list
    for section in plan:
        pieces = keywords[section.keyword]
        size += fill(out, pieces.counted(section.count).heading_html, _anchor(section.anchor))
        in_list = False
        for item in section.items:
            # The layout sees entries by their sizes only; these are the day's listings.
            listing: Listing = item.entry  # type: ignore[assignment]
            if (item.kind == "title") != in_list:
                # A run of title lines is one list.
                in_list = not in_list
                edge = list_start if in_list else list_end
                out.append(edge.text)
                size += edge.size
            if item.kind == "full":
                entry = full.get(listing.arxiv_id)
                if entry is None:
                    entry = full[listing.arxiv_id] = full_entry(listing, lines[listing.arxiv_id])
                out += entry.html
                size += entry.html_size
            elif item.kind == "short":
                short = short_entry(listing, lines[listing.arxiv_id])
                size += fill(out, listing.short_html, short.title, short.matched_html, view_url)
            elif item.kind == "title":
                out.append(listing.title_html.text)
                size += listing.title_html.size
            else:
                # Where a pointer leads: the entry in this message, or on the web page.
                page = NOTHING if listing.arxiv_id in numbers else view_url
                keyword = keywords[item.first_keyword].escaped
                size += fill(out, listing.above_html, page, keyword)
        if in_list:
            out.append(list_end.text)
            size += list_end.size
        if section.above:
            note = fragments.chrome.above_html(section.above, section.keyword)
            out.append(note.text)
            size += note.size
        if section.hidden:
            piece = fragments.chrome.hidden_html(section.anchor, section.hidden, section.keyword)
            size += fill(out, piece, view_url)
    return size


def _text(
    fragments: DayFragments,
    keywords: dict[str, KeywordPieces],
    request: Request,
    header: dict,
    plan: list[Section],
    numbers: dict[str, int],
    lines: dict[str, tuple[str, ...]],
    full: dict[str, FullEntry],
) -> list[str]:
    """The text part as segments: body.txt's holes filled."""
    out: list[str] = []
    skeleton = fragments.chrome.text_skeleton(header, request.max_per_keyword is None)
    for index, name in enumerate(skeleton.holes):
        out.append(skeleton.parts[index])
        if name == "entries":
            view_url = request.links["view_url"]
            _text_entries(out, fragments, keywords, plan, numbers, lines, view_url, full)
        elif name == "keyword_list":
            out.extend(keywords[keyword].footer_text for keyword in request.keywords)
        elif name in COUNTS:
            out.append(str(header[name]))
        else:
            out.append(request.links[name])
    out.append(skeleton.parts[-1])
    return out


def _text_entries(
    out: list[str],
    fragments: DayFragments,
    keywords: dict[str, KeywordPieces],
    plan: list[Section],
    numbers: dict[str, int],
    lines: dict[str, tuple[str, ...]],
    view_url: str,
    full: dict[str, FullEntry],
) -> None:
    full_entry, short_entry = fragments.full_entry, fragments.short_entry
    for section in plan:
        out.append(keywords[section.keyword].counted(section.count).heading_text)
        for item in section.items:
            # The layout sees entries by their sizes only; these are the day's listings.
            listing: Listing = item.entry  # type: ignore[assignment]
            number = numbers.get(listing.arxiv_id)
            if item.kind == "full":
                entry = full.get(listing.arxiv_id) or full_entry(listing, lines[listing.arxiv_id])
                out += (entry.text_head, str(number), *entry.text_tail)
            elif item.kind == "short":
                short = short_entry(listing, lines[listing.arxiv_id])
                fill_text(out, listing.short_text, str(number), short.matched_text, view_url)
            elif item.kind == "title":
                out.append(listing.title_text)
            elif number is None:
                fill_text(out, listing.above_text, item.first_keyword)
            else:
                fill_text(out, listing.numbered_above_text, item.first_keyword, str(number))
        piece = fragments.chrome.section_end_text(section.anchor, section.hidden, section.above)
        fill_text(out, piece, *([view_url] * len(piece.holes)))


@lru_cache(maxsize=256)
def _anchor(anchor: str) -> Sized:
    return Sized(anchor, len(anchor))
