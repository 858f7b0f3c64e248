"""Which papers the digest email shows in full, as a title line, or only counts.

Used by worker/digest_fragments.py to lay out each digest. Owns the size
budget: Gmail clips HTML past 102 KB, so the email shows at most
`max_per_keyword` papers in full per keyword and keeps the whole HTML under
`HTML_BUDGET` bytes by turning further entries into title-only lines, then
into a count with a link to the full digest page (which has no limits).
Sizes are estimated before assembling, then corrected by the measured size.
"""

from dataclasses import dataclass, field

from newsletter.models import Paper, Translation
from worker.digest_entries import MAX_AUTHORS, PaperEntry

# Gmail clips at 102 KB; leave room for what mail clients and DKIM add.
HTML_BUDGET = 95_000
# Bytes of HTML around the content, measured on the sample digest: per full
# entry, per title-only line (plus its title), and for a digest with no papers.
_ENTRY_HTML = 500
_TITLE_WEIGHT = 250
_FIXED_HTML = 8_000
# Aim this far under the budget, so one cut usually suffices.
_MARGIN = 1_000


@dataclass
class Item:
    """A line of a section: the full entry, its title only, or a pointer to it above."""

    kind: str  # full | title | above
    entry: PaperEntry
    first_keyword: str = ""


@dataclass
class Section:
    keyword: str
    anchor: str
    count: int
    items: list[Item] = field(default_factory=list)
    # Papers of this section not listed at all (past the byte budget).
    hidden: int = 0


def estimate_full_entry(paper: Paper, translation: Translation | None) -> int:
    """A rough size in bytes of the paper's full HTML entry."""
    raw = (
        paper.title,
        paper.abstract,
        paper.comments or "",
        paper.journal_ref or "",
        paper.doi or "",
        ", ".join(paper.authors[: MAX_AUTHORS + 1]),
        translation.title if translation else "",
        translation.abstract if translation else "",
    )
    return _ENTRY_HTML + 45 * len(paper.categories) + sum(len(s.encode()) for s in raw)


def plan_sections(
    sections: list[tuple[str, list[str]]],
    entries: dict[str, PaperEntry],
    max_per_keyword: int | None,
) -> list[Section]:
    """Sections with each paper in full once (first keyword), later as a pointer."""
    plan = []
    first_keyword: dict[str, str] = {}
    for position, (keyword, ids) in enumerate(sections, start=1):
        section = Section(keyword=keyword, anchor=f"k-{position}", count=len(ids))
        shown_in_full = 0
        for arxiv_id in ids:
            entry = entries[arxiv_id]
            if arxiv_id in first_keyword:
                section.items.append(Item("above", entry, first_keyword[arxiv_id]))
                continue
            first_keyword[arxiv_id] = keyword
            if max_per_keyword is None or shown_in_full < max_per_keyword:
                section.items.append(Item("full", entry))
                shown_in_full += 1
            else:
                section.items.append(Item("title", entry))
        plan.append(section)
    return plan


def settle_plan(plan: list[Section]) -> dict[str, int]:
    """The number of each paper listed in full; a pointer whose paper was cut becomes its title.

    Called before each assembly, as the size fitting may have cut listings.
    """
    numbers: dict[str, int] = {}
    listed: set[str] = set()
    for section in plan:
        for item in section.items:
            if item.kind == "full":
                numbers[item.entry.arxiv_id] = len(numbers) + 1
            if item.kind != "above":
                listed.add(item.entry.arxiv_id)
    for section in plan:
        for item in section.items:
            if item.kind == "above" and item.entry.arxiv_id not in listed:
                # Its first listing was cut for size: this line is now its listing.
                item.kind = "title"
    return numbers


def fit_plan(plan: list[Section]) -> None:
    """Cut listings until the estimated HTML fits the budget (before the first render)."""
    if _FIXED_HTML + _weight(plan) > HTML_BUDGET:
        _shrink(plan, HTML_BUDGET - _FIXED_HTML - _MARGIN)


def refit_plan(plan: list[Section], html_size: int) -> None:
    """Cut listings after a render measured `html_size` bytes, over the budget."""
    # Estimates are rough: cut by the measured overshoot, scaled from bytes to
    # estimate units.
    weight = _weight(plan)
    scale = weight / max(html_size - _FIXED_HTML, 1)
    _shrink(plan, weight - (html_size - HTML_BUDGET + _MARGIN) * scale)


def _weight(plan: list[Section]) -> float:
    return sum(
        item.entry.weight if item.kind == "full" else _TITLE_WEIGHT + len(item.entry.title.encode())
        for section in plan
        for item in section.items
    )


def _shrink(plan: list[Section], budget: float) -> None:
    """Cut listings until their estimated weight fits `budget`.

    Cut first what the digest page has anyway and the reader loses least:
    pointers to papers listed elsewhere, then title-only lines (both from the
    end), then full entries, always from the section that has the most, so
    every keyword keeps some. What is cut is counted per section and linked.
    """
    total = _weight(plan)
    for kind in ("above", "title"):
        for section in reversed(plan):
            for index in range(len(section.items) - 1, -1, -1):
                if total <= budget:
                    return
                item = section.items[index]
                if item.kind == kind:
                    total -= _TITLE_WEIGHT + len(item.entry.title.encode())
                    del section.items[index]
                    section.hidden += 1
    while total > budget:
        fullest = max(reversed(plan), key=lambda s: sum(item.kind == "full" for item in s.items))
        fulls = [index for index, item in enumerate(fullest.items) if item.kind == "full"]
        if not fulls:
            return
        total -= fullest.items[fulls[-1]].entry.weight
        del fullest.items[fulls[-1]]
        fullest.hidden += 1
