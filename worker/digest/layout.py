"""Which papers the digest email shows in full, as a title line, or only counts.

Used by worker/digest/fragments.py to lay out each digest. Owns the size
budget: Gmail clips HTML past 102 KB, so the email shows at most
`max_per_keyword` papers in full per keyword (the rest by title) and keeps the
whole HTML under `HTML_BUDGET` bytes. Every matched paper stays in the email:
to fit, pointers to papers listed under an earlier keyword go first (counted),
then full entries are shortened (abstract cut, a "more" link), then shortened
entries become title lines linked to arXiv. Only a digest whose titles alone
cannot fit (some 650 papers) loses title lines, counted and linked to the
digest page (which has no limits).
Sizes are estimated before assembling, then corrected by the measured size.
"""

from collections.abc import Mapping
from typing import Protocol

from newsletter.models import Paper, Translation
from worker.digest.entries import MAX_AUTHORS

# Gmail clips at 102 KB; leave room for what mail clients and DKIM add.
HTML_BUDGET = 95_000
# Bytes of HTML around the content, measured on the sample digest: per full
# entry, per shortened entry, per title-only line (plus its title), and for a
# digest with no papers.
_ENTRY_HTML = 500
_SHORT_HTML = 600
_TITLE_WEIGHT = 60
_FIXED_HTML = 8_000
# Aim this far under the budget, so one cut usually suffices.
_MARGIN = 1_000


class Listed(Protocol):
    """A paper as laid out: its id and the estimated sizes of its full entry and title line."""

    arxiv_id: str
    weight: int
    short_weight: int
    title_weight: int


# Item and Section are made for every digest: plain classes, not dataclasses,
# so that the compiled build (setup.py) makes them natively (a dataclass's
# __init__ is Python code generated at import).
class Item:
    """A line of a section: the full entry, its title only, or a pointer to it above."""

    __slots__ = ("kind", "entry", "first_keyword")

    def __init__(self, kind: str, entry: Listed, first_keyword: str = ""):
        self.kind = kind  # full | short | title | above
        self.entry = entry
        self.first_keyword = first_keyword


class Section:
    __slots__ = ("keyword", "anchor", "count", "items", "above", "hidden")

    def __init__(self, keyword: str, anchor: str, count: int, items: list[Item] | None = None):
        self.keyword = keyword
        self.anchor = anchor
        self.count = count
        self.items: list[Item] = [] if items is None else items
        # Pointers to papers listed under an earlier keyword, left out for size.
        self.above = 0
        # Papers of this section not listed at all (titles past the byte budget).
        self.hidden = 0


def estimate_full_entry(paper: Paper, translation: Translation | None) -> int:
    """A rough size in bytes of the paper's full HTML entry."""
    raw: tuple[str, ...] = (
        paper.title or "",
        paper.abstract or "",
        paper.comments or "",
        paper.journal_ref or "",
        paper.doi or "",
        ", ".join(paper.authors[: MAX_AUTHORS + 1]),
        (translation.title or "") if translation else "",
        (translation.abstract or "") if translation else "",
    )
    return _ENTRY_HTML + 45 * len(paper.categories) + sum(len(s.encode()) for s in raw)


def estimate_short_entry(*texts: str) -> int:
    """A rough size in bytes of a shortened HTML entry showing these texts (already cut)."""
    return _SHORT_HTML + sum(len(s.encode()) for s in texts)


def matched_lines(sections: list[tuple[str, list[str]]]) -> dict[str, tuple[str, ...]]:
    """Each paper's keyword lines, in section order, papers in order of first appearance.

    Most papers are under one line: they share that line's one-tuple (a
    digest builds no list per paper).
    """
    lines: dict[str, tuple[str, ...]] = {}
    for keyword, ids in sections:
        one = (keyword,)
        for arxiv_id in ids:
            found = lines.get(arxiv_id)
            lines[arxiv_id] = one if found is None else found + one
    return lines


def plan_sections(
    sections: list[tuple[str, list[str]]],
    entries: Mapping[str, Listed],
    max_per_keyword: int | None,
) -> tuple[list[Section], dict[str, int], int]:
    """Sections with each paper in full once (first keyword), later as a pointer.

    With the number of each paper in full (`settle_plan`'s, for the plan as
    made) and the plan's estimated weight: worked out in the same pass, as
    most digests are assembled as planned.
    """
    plan = []
    first_keyword: dict[str, str] = {}
    numbers: dict[str, int] = {}
    weight = 0
    for position, (keyword, ids) in enumerate(sections, start=1):
        section = Section(keyword=keyword, anchor=f"k-{position}", count=len(ids))
        items = section.items
        shown_in_full = 0
        for arxiv_id in ids:
            entry = entries[arxiv_id]
            if arxiv_id in first_keyword:
                items.append(Item("above", entry, first_keyword[arxiv_id]))
                weight += entry.title_weight
                continue
            first_keyword[arxiv_id] = keyword
            if max_per_keyword is None or shown_in_full < max_per_keyword:
                items.append(Item("full", entry))
                numbers[arxiv_id] = len(numbers) + 1
                weight += entry.weight
                shown_in_full += 1
            else:
                items.append(Item("title", entry))
                weight += entry.title_weight
        plan.append(section)
    return plan, numbers, weight


def settle_plan(plan: list[Section]) -> tuple[list[Section], dict[str, int]]:
    """The plan to assemble, and the number of each paper with an entry (full or short) here.

    A pointer whose paper was cut (by the size fitting) becomes its title
    line. `plan` is left as it is: where a pointer changes, the plan returned
    is a new one (new sections and items), which the caller fits from then on.
    Called after each cut of the size fitting, before assembling again (a plan
    as `plan_sections` made it comes with its numbers).
    """
    numbers: dict[str, int] = {}
    listed: set[str] = set()
    pointers = []
    for section in plan:
        for item in section.items:
            kind = item.kind
            if kind == "above":
                pointers.append(item.entry.arxiv_id)
                continue
            if kind != "title":
                numbers[item.entry.arxiv_id] = len(numbers) + 1
            listed.add(item.entry.arxiv_id)
    if listed.issuperset(pointers):
        return plan, numbers
    settled = []
    for section in plan:
        items = [
            # Its first listing was cut for size: this line is now its listing.
            Item("title", item.entry)
            if item.kind == "above" and item.entry.arxiv_id not in listed
            else item
            for item in section.items
        ]
        copy = Section(section.keyword, section.anchor, section.count, items)
        copy.above, copy.hidden = section.above, section.hidden
        settled.append(copy)
    return settled, numbers


def fit_plan(plan: list[Section], weight: int) -> bool:
    """Cut listings until the estimated HTML fits the budget (before the first render).

    `weight`: the plan's, as `plan_sections` estimated it. Whether anything was cut.
    """
    if _FIXED_HTML + weight <= HTML_BUDGET:
        return False
    _shrink(plan, HTML_BUDGET - _FIXED_HTML - _MARGIN)
    return True


def refit_plan(plan: list[Section], html_size: int) -> None:
    """Cut listings after a render measured `html_size` bytes, over the budget."""
    # Estimates are rough: cut by the measured overshoot, scaled from bytes to
    # estimate units.
    weight = _weight(plan)
    scale = weight / max(html_size - _FIXED_HTML, 1)
    _shrink(plan, weight - (html_size - HTML_BUDGET + _MARGIN) * scale)


def title_weight(title: str) -> int:
    """The estimate of a title-only line (or pointer) of a paper with this title."""
    return _TITLE_WEIGHT + len(title.encode())


def _item_weight(item: Item) -> int:
    if item.kind == "full":
        return item.entry.weight
    if item.kind == "short":
        return item.entry.short_weight
    return item.entry.title_weight


def _weight(plan: list[Section]) -> int:
    total = 0
    for section in plan:
        for item in section.items:
            # _item_weight, inline: this runs for every item of a digest that is cut.
            kind, entry = item.kind, item.entry
            if kind == "full":
                total += entry.weight
            elif kind == "short":
                total += entry.short_weight
            else:
                total += entry.title_weight
    return total


def _shrink(plan: list[Section], budget: float) -> None:
    """Make the listings smaller until their estimated weight fits `budget`.

    Least loss to the reader first: pointers to papers listed under an
    earlier keyword go (counted), from the end; then full entries become
    short ones, then short ones title lines, each time the last of the
    section that has the most of them, so every keyword keeps some. Title
    lines go (counted and linked) only if all of them cannot fit.
    """
    total = _weight(plan)
    for section in reversed(plan):
        items = section.items
        for index in range(len(items) - 1, -1, -1):
            if total <= budget:
                return
            if items[index].kind == "above":
                total -= items[index].entry.title_weight
                del items[index]
                section.above += 1
    total = _demote(plan, total, budget, "full", "short")
    total = _demote(plan, total, budget, "short", "title")
    for section in reversed(plan):
        items = section.items
        for index in range(len(items) - 1, -1, -1):
            if total <= budget:
                return
            total -= _item_weight(items[index])
            del items[index]
            section.hidden += 1


def _demote(plan: list[Section], total: int, budget: float, kind: str, to: str) -> int:
    """Turn `kind` items into `to` items until `total` fits `budget`; the new total."""
    counts = [sum(item.kind == kind for item in section.items) for section in plan]
    while total > budget:
        most = max(counts, default=0)
        if not most:
            break
        # The last section with the most of them gives its last one.
        position = len(counts) - 1 - counts[::-1].index(most)
        items = plan[position].items
        item = next(items[i] for i in range(len(items) - 1, -1, -1) if items[i].kind == kind)
        before = _item_weight(item)
        item.kind = to
        total -= before - _item_weight(item)
        counts[position] -= 1
    return total
