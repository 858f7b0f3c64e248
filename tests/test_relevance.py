"""Relevance order inside each section (issue 12 item 4): worker/digest/relevance.py
through `DayDigest.sections`, and the email, the digest page and the Atom feed.

Inside a section: late papers, then the day's new papers and cross-lists, then
replacements; in each, papers whose title alone matches the section's line, then
those more of the reader's lines match, then by arXiv id. Checked against a
plain sort of each section computed here, paper by paper, with the digest's
matcher (so phrases, plurals, exclusions, cat: and au: are the digest's own).
"""

import re
from dataclasses import replace
from datetime import date

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from test_delivery import add_subscriber, deliveries, demo, sink  # noqa: F401 (fixtures)
from test_digest import DEFAULTS, make_paper

from newsletter import db
from newsletter.config import settings as app_settings
from newsletter.models import AnnounceType, Paper
from newsletter.tokens import read_token, subscriber_links
from worker.delivery.dispatch import dispatch_digests
from worker.digest.core import DayDigest, Reader
from worker.digest.relevance import order_sections
from worker.digest.selection import match_papers

CONFIG = replace(DEFAULTS, DIGEST_MAX_PER_KEYWORD=25)
DAY = date(2026, 5, 29)
EARLIER = date(2026, 5, 27)
TIERS = {"late": 0, AnnounceType.NEW: 1, AnnounceType.CROSS: 1}


def title_only(paper: Paper) -> Paper:
    return make_paper(
        paper.arxiv_id,
        title=paper.title,
        abstract="",
        authors=paper.authors,
        categories=paper.categories,
    )


def plain_sections(
    papers: dict[str, Paper], reader: Reader, late: set[str] = frozenset()
) -> list[tuple[str, list[str]]]:
    """The reader's sections by the rules, each paper matched on its own."""

    def matches(paper: Paper, line: str) -> bool:
        return paper.arxiv_id in match_papers([paper], [line])[line]

    def shown(paper: Paper) -> bool:
        if paper.listing_date < DAY:
            return paper.arxiv_id in late
        is_replacement = paper.announce_type not in (AnnounceType.NEW, AnnounceType.CROSS)
        return reader.include_replacements or not is_replacement

    found = {
        line: [p for p in papers.values() if shown(p) and matches(p, line)]
        for line in reader.keywords
    }
    lines = {i: sum(i in {p.arxiv_id for p in ps} for ps in found.values()) for i in papers}

    def key(paper: Paper, line: str) -> tuple:
        late_first = 0 if paper.listing_date < DAY else TIERS.get(paper.announce_type, 2)
        in_title = matches(title_only(paper), line)
        return (late_first, not in_title, -lines[paper.arxiv_id], paper.arxiv_id)

    return [
        (line, [p.arxiv_id for p in sorted(ps, key=lambda p, line=line: key(p, line))])
        for line, ps in found.items()
        if ps
    ]


WORDS = ["graph", "learning", "robot", "graphs", "policy"]
text = st.lists(st.sampled_from([*WORDS, "of", ",", "the"]), max_size=6).map(" ".join)
lines = st.sampled_from(
    [
        "graph",
        "learning",
        "robot policy",
        "graph learning",
        '"graph"',
        "learning -robot",
        "policy cat:cs.RO",
        "au:Lovelace",
        "au:Lovelace graph",
        "cat:cs",
    ]
)
paper_values = st.fixed_dictionaries(
    {
        "title": text,
        "abstract": text,
        "authors": st.sampled_from([["Ada Lovelace"], ["Alan Turing"]]),
        "categories": st.sampled_from([["cs.LG"], ["cs.RO"], ["math.ST", "cs.RO"]]),
        "announce_type": st.sampled_from(list(AnnounceType)),
        "late": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(paper_values, min_size=1, max_size=12),
    st.lists(lines, min_size=1, max_size=4, unique=True),
    st.booleans(),
    st.data(),
)
def test_sections_are_a_plain_sort_by_the_rules(values, keywords, replacements, data):
    papers = {}
    for n, fields in enumerate(values):
        fields = dict(fields)
        is_late = fields.pop("late")
        arxiv_id = f"2605.{29999 - n * 7919 % 10000:05d}"  # ids not in list order
        papers[arxiv_id] = make_paper(arxiv_id, listing_date=EARLIER if is_late else DAY, **fields)
    reader = Reader(tuple(keywords), "en", "UTC", replacements)
    day = DayDigest.from_rows(DAY, papers, {}, CONFIG)
    matched = day.late_matches({0: reader}).get(0, set())
    carried = data.draw(st.sets(st.sampled_from(sorted(matched)))) if matched else set()
    sections = day.sections({0: reader}, {0: carried})[0]
    assert sections == plain_sections(papers, reader, carried)


def paper(arxiv_id: str, title: str, abstract: str = "Nothing here.", **fields) -> Paper:
    return make_paper(arxiv_id, title=title, abstract=abstract, **{"listing_date": DAY, **fields})


@pytest.mark.parametrize(
    ("papers", "keywords", "expected"),
    [
        # A title match first, however many lines match the others.
        (
            [
                paper("2605.00001", "Robots", "graph learning for robots"),
                paper("2605.00002", "Graph learning"),
            ],
            ["graph learning", "robot"],
            [("graph learning", ["2605.00002", "2605.00001"]), ("robot", ["2605.00001"])],
        ),
        # Among title matches (or abstract matches), more lines first, then the id.
        (
            [
                paper("2605.00003", "Graph learning"),
                paper("2605.00002", "Graph learning"),
                paper("2605.00001", "Graph learning", "A robot."),
            ],
            ["graph learning", "robot"],
            [
                ("graph learning", ["2605.00001", "2605.00002", "2605.00003"]),
                ("robot", ["2605.00001"]),
            ],
        ),
        # The title must hold the phrase as the matcher reads it: "graph, learning" is not it,
        # a plural is, an exact phrase takes no plural.
        (
            [
                paper("2605.00001", "Graph, learning", "graph learning"),
                paper("2605.00002", "Policies", "A policy."),
                paper("2605.00003", "Graph learnings", "graph learning"),
            ],
            ["graph learning", '"policy"', "policy"],
            [
                ("graph learning", ["2605.00003", "2605.00001"]),
                ('"policy"', ["2605.00002"]),
                ("policy", ["2605.00002"]),
            ],
        ),
        # A line of only au: or cat: holds for the title as for the paper.
        (
            [
                paper("2605.00002", "Graphs", "graph", authors=["Ada Lovelace"]),
                paper("2605.00001", "Trees", "graph", authors=["Ada Lovelace"]),
            ],
            ["au:Lovelace", "au:Lovelace graph"],
            [
                ("au:Lovelace", ["2605.00001", "2605.00002"]),
                ("au:Lovelace graph", ["2605.00002", "2605.00001"]),
            ],
        ),
        # Cross-lists are ordered with new papers; replacements come after them.
        (
            [
                paper("2605.00001", "Policy", announce_type=AnnounceType.REPLACE),
                paper("2605.00002", "Robots", "A policy.", announce_type=AnnounceType.CROSS),
                paper("2605.00003", "Policy", announce_type=AnnounceType.CROSS),
                paper("2605.00004", "Robots", "A policy."),
            ],
            ["policy"],
            [("policy", ["2605.00003", "2605.00002", "2605.00004", "2605.00001"])],
        ),
    ],
)
def test_order_cases(papers, keywords, expected):
    day = DayDigest.from_rows(DAY, {p.arxiv_id: p for p in papers}, {}, CONFIG)
    reader = Reader(tuple(keywords), "en", "UTC", include_replacements=True)
    assert day.sections({0: reader})[0] == expected


def test_late_papers_stay_first_in_their_sections():
    papers = {
        "2605.00009": paper("2605.00009", "Graph learning"),
        "2605.00001": paper("2605.00001", "Trees", "graph learning", listing_date=EARLIER),
        "2605.00002": paper("2605.00002", "Graph learning", listing_date=EARLIER),
    }
    day = DayDigest.from_rows(DAY, papers, {}, CONFIG)
    reader = Reader(("graph learning",), "en", "UTC", False)
    late = day.late_matches({0: reader})
    assert late == {0: {"2605.00001", "2605.00002"}}
    assert day.sections({0: reader}, late)[0] == [
        ("graph learning", ["2605.00002", "2605.00001", "2605.00009"])
    ]


def test_order_sections_counts_each_readers_lines():
    sections = [("a", ["3", "2", "1"]), ("b", ["3"]), ("c", ["2", "3"])]
    ordered = order_sections(sections, {"a": {"1"}}, lambda _id: 1)
    assert ordered == [("a", ["1", "3", "2"]), ("b", ["3"]), ("c", ["3", "2"])]


# --- email, page and feed ------------------------------------------------------

LINES = ["learning", "reinforcement learning", "diffusion policy"]
ABS = re.compile(r"https://arxiv\.org/abs/([0-9]{4}\.[0-9]{5})")
# A paper's link in a digest's HTML: to arXiv, or (a pointer) to its entry.
LINKED = re.compile(r"(?:https://arxiv\.org/abs/|#p-)([0-9]{4}\.[0-9]{5})")


def in_order(found: list[str], section: list[str]) -> bool:
    """Whether `found` lists papers of `section` in the section's order (each at most once)."""
    position = {arxiv_id: n for n, arxiv_id in enumerate(section)}
    numbers = [position[i] for i in found]
    return numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def ids_per_section(html: str) -> list[list[str]]:
    """The arXiv ids each section of a digest's HTML links, in order, each once."""
    parts = re.split(r'<h2 id="k-\d+"', html)[1:]
    parts[-1] = parts[-1].split("You receive this")[0]
    return [list(dict.fromkeys(LINKED.findall(part))) for part in parts]


def test_email_page_and_feed_show_the_rows_order(sink, app, client, demo):  # noqa: F811
    reader = add_subscriber("order@example.com", LINES)
    dispatch_digests(demo)
    (row,) = deliveries()
    sections = row.sections
    papers = {p.arxiv_id: p for p in db.session().scalars(select(Paper))}
    assert sections == [[line, ids] for line, ids in plain_sections(papers, Reader.of(reader))]
    # The order is not the ids' order: the title matches lead.
    first = sections[0][1]
    assert first != sorted(first)
    assert "learning" in papers[first[0]].title.lower()

    (message,) = sink.messages()
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    view = subscriber_links(app_settings(app), reader.public_id, demo)["view_url"]
    page = client.get(view.removeprefix(app_settings(app).BASE_URL)).get_data(as_text=True)
    for shown in (html, page):
        found = ids_per_section(shown)
        assert len(found) == len(sections)
        for ids, (_keyword, section) in zip(found, sections, strict=True):
            assert in_order(ids, section)
    # The page shows every paper: each section exactly in the row's order.
    assert ids_per_section(page) == [ids for _keyword, ids in sections]
    # The text part lists the first section's papers in the same order.
    text_ids = list(dict.fromkeys(ABS.findall(text.split("\n--\n")[0])))
    assert text_ids[:10] == list(dict.fromkeys(i for _k, ids in sections for i in ids))[:10]

    feed_url = subscriber_links(app_settings(app), reader.public_id)["feed_url"]
    feed = feedparser.parse(client.get(feed_url.removeprefix(app_settings(app).BASE_URL)).data)
    entries = [entry.link.removeprefix("https://arxiv.org/abs/") for entry in feed.entries]
    assert entries == list(dict.fromkeys(i for _keyword, ids in sections for i in ids))


def test_the_footer_explains_the_order_and_links_the_feed(sink, app, demo):  # noqa: F811
    reader = add_subscriber("footer@example.com", LINES)
    dispatch_digests(demo)
    (message,) = sink.messages()
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    footer = text.split("\n--\n")[1]
    assert "papers whose title matches the keyword first, then\nthose matching more" in footer
    (token,) = re.findall(
        r"Your matches as an Atom feed:\n  http://digest\.test/feed/(\S+)\n", footer
    )
    assert read_token("test-secret-key", "feed", token) == reader.public_id
    footer = html.split("You receive this")[1]
    assert "papers whose title matches the keyword first, then those matching more" in footer
    assert (
        f'<a href="http://digest.test/feed/{token}" style="color:#0969da">Atom feed</a>' in footer
    )
