"""The assembly's shortcuts give what the plain ways give (worker/digest/layout.py, header.py).

Each paper's matched lines built as shared tuples (`matched_lines`) against
the lists a digest used to build; the papers word remembered per count
(`papers_word`) against the catalogue's, in every locale.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.locales import LOCALES, lngettext
from worker.digest.header import papers_word
from worker.digest.layout import matched_lines


def plain_matched_lines(sections: list[tuple[str, list[str]]]) -> dict[str, tuple[str, ...]]:
    matched: dict[str, list[str]] = {}
    for keyword, ids in sections:
        for arxiv_id in ids:
            matched.setdefault(arxiv_id, []).append(keyword)
    return {arxiv_id: tuple(keywords) for arxiv_id, keywords in matched.items()}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["graph", "neural networks", "cat:cs.LG", "é 中"]),
            st.lists(st.sampled_from(["2411.1", "2411.2", "2411.3", "2411.4"]), max_size=4),
        ),
        max_size=6,
    )
)
def test_matched_lines_equal_the_plain_lists(sections):
    found = matched_lines(sections)
    expected = plain_matched_lines(sections)
    assert found == expected
    # The same order: papers as they first appear (plan_sections and entries follow it).
    assert list(found) == list(expected)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(LOCALES)), st.integers(min_value=0, max_value=2_000))
def test_papers_word_equals_the_catalogue(locale, papers):
    assert papers_word(locale, papers) == lngettext(locale, "paper", "papers", papers)
    # Asked again (remembered), still the catalogue's.
    assert papers_word(locale, papers) == lngettext(locale, "paper", "papers", papers)
