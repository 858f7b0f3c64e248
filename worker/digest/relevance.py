"""The order of the papers inside each section of a digest: relevance (pure).

Used by worker/digest/core.py (`DayDigest.sections`), so every reader of the
sections (the email, the digest web page, the Atom feed, a resend from the
ledger row) has one order. Inside a section, in this order of keys:

1. the paper's tier: late papers of earlier dates first (so the per-keyword
   limit of the email never hides them, issue 10), then the day's new papers
   and cross-lists, then replacements (old papers' new versions, for readers
   who tick them);
2. papers whose title alone matches the section's line (the digest's own
   rules, worker/digest/line_matches.py) before those matched by the abstract;
3. papers more of the reader's lines match before those fewer match;
4. the arXiv id.
"""

from collections.abc import Callable, Collection, Mapping

# (keyword, arXiv ids), as worker/digest/core.py's `Sections`.
Sections = list[tuple[str, list[str]]]


def order_sections(
    sections: Sections,
    title_matches: Mapping[str, Collection[str]],
    tier: Callable[[str], int],
) -> Sections:
    """Each section's papers by relevance: tier, title match, lines matched, arXiv id.

    `title_matches` maps each keyword to the papers whose title alone it
    matches; `tier(arxiv_id)` is 0 for late papers, 1 for new papers and
    cross-lists, 2 for replacements.
    """
    lines: dict[str, int] = {}
    for _keyword, ids in sections:
        for arxiv_id in ids:
            lines[arxiv_id] = lines.get(arxiv_id, 0) + 1
    return [
        (keyword, sorted(ids, key=_relevance(title_matches.get(keyword, ()), lines, tier)))
        for keyword, ids in sections
    ]


def _relevance(
    titled: Collection[str], lines: dict[str, int], tier: Callable[[str], int]
) -> Callable[[str], tuple[int, bool, int, str]]:
    """The sort key of one section's papers (smaller first)."""
    return lambda arxiv_id: (tier(arxiv_id), arxiv_id not in titled, -lines[arxiv_id], arxiv_id)
