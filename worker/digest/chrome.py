"""What surrounds a digest's entries, rendered once per day and locale: skeletons, subject, notes.

Used by worker/digest/fragments.py (`DayFragments.chrome`) and
worker/digest/assembly.py and header.py, which fill these pieces' holes per
reader: body.mjml and body.txt with holes for the entries, keywords and
links; the subject with holes for its counts and keywords; the header line,
the footer's links and the notes that close a section ("N more ..."). Kept
in the day's small LRU (worker/digest/pieces.py), keyed by what they show.
"""

from collections.abc import Mapping

import emails
from worker.digest.pieces import LRU, Fragment, Sized, escaped, fragment, hole, sized

_LINKS = ("manage_url", "unsubscribe_url", "one_click_url", "view_url", "feed_url")
_SKELETON_HOLES = (
    "paper_count",
    "papers_word",
    "subject_keywords",
    "summary",
    "section_links",
    "entries",
    "footer_keywords",
    "footer_links",
)
# The header's counts are holes of the text skeleton and the header line,
# filled per digest: its dates and zone are shared by many digests, its counts
# vary (rendering per distinct counts was a miss for ~1 digest in 10).
COUNTS = ("paper_count", "full_count", "papers_word")


class DigestChrome:
    """One day's pieces around the entries in one locale; `html` and `text` are its macros."""

    def __init__(self, html, text, locale: str, small: LRU):
        self.html = html
        self.text = text
        self.locale = locale
        self._small = small
        self._title_list: tuple[Sized, Sized] | None = None

    def skeleton(self, listing_date: str) -> Fragment:
        """body.mjml with holes for all but the date (rendered once per day)."""
        return self._small.get_or_make(
            ("skeleton.html", listing_date),
            lambda: fragment(
                emails.render_template(
                    "digest/body.mjml",
                    self.locale,
                    listing_date=listing_date,
                    **{name: hole(name) for name in _SKELETON_HOLES},
                )
            ),
        )

    def text_skeleton(self, header: Mapping[str, object], full_page: bool) -> Fragment:
        """body.txt for these header values, with holes for entries, keywords, links and `COUNTS`."""
        return self._small.get_or_make(
            ("skeleton.txt", full_page, *_without_counts(header)),
            lambda: fragment(
                emails.render_template(
                    "digest/body.txt",
                    self.locale,
                    entries=hole("entries"),
                    keyword_list=hole("keyword_list"),
                    links={name: hole(name) for name in _LINKS},
                    full_page=full_page,
                    **_count_holes(header),
                ),
                text_part=True,
            ),
        )

    def subject(self, listing_date: str, with_keywords: bool) -> Fragment:
        """subject.txt with holes for its counts and (if shown) keywords, once per day and kind."""
        found = self._small.find(("subject", listing_date, with_keywords))
        if found is None:
            names = ("paper_count", "papers_word", "subject_keywords")
            values: dict[str, str] = {name: hole(name) for name in names}
            if not with_keywords:
                values["subject_keywords"] = ""
            rendered = emails.render_template(
                "digest/subject.txt", self.locale, listing_date=listing_date, **values
            )
            found = fragment(rendered)
            self._small.put(("subject", listing_date, with_keywords), found)
        return found

    def summary(self, header: Mapping[str, object]) -> Fragment:
        """The header line for these values, with holes for `COUNTS` and the view link (if it shows)."""
        return self._small.get_or_make(
            ("summary", *_without_counts(header)),
            lambda: fragment(self.html.summary(view_url=hole("view_url"), **_count_holes(header))),
        )

    def footer_links(self, full_page: bool) -> Fragment:
        return self._small.get_or_make(
            ("footer.links", full_page),
            lambda: fragment(
                self.html.footer_links(full_page, {name: hole(name) for name in _LINKS})
            ),
        )

    def hidden_html(self, anchor: str, hidden: int, keyword: str) -> Fragment:
        """Holes: view_url."""
        return self._small.get_or_make(
            ("hidden.html", anchor, hidden, keyword),
            lambda: fragment(self.html.hidden_note(hole("view_url"), anchor, hidden, keyword)),
        )

    def above_html(self, above: int, keyword: str) -> Sized:
        """The count of a section's pointers left out for size (their papers are listed above)."""
        return self._small.get_or_make(
            ("above.html", above, keyword), lambda: sized(str(self.html.above_note(above, keyword)))
        )

    def section_end_text(self, anchor: str, hidden: int, above: int) -> Fragment:
        """Holes: view_url (if any papers are hidden)."""
        return self._small.get_or_make(
            ("end.txt", anchor, hidden, above),
            lambda: fragment(
                self.text.section_end(hole("view_url"), anchor, hidden, above), text_part=True
            ),
        )

    @property
    def title_list(self) -> tuple[Sized, Sized]:
        """The start and end of a run of title lines (a list) in HTML, made on first use.

        Not a cached_property: compiled with mypyc (setup.py), one is made again on every use.
        """
        if self._title_list is None:
            html = self.html
            self._title_list = (
                sized(str(html.title_list_start())),
                sized(str(html.title_list_end())),
            )
        return self._title_list


def _without_counts(header: Mapping[str, object]) -> tuple:
    """What a piece with holes for the counts depends on: the other values, and whether all show in full."""
    others = (value for name, value in header.items() if name not in COUNTS)
    return (*others, header["full_count"] == header["paper_count"])


def _count_holes(header: Mapping[str, object]) -> dict[str, object]:
    """The header's values with holes for its counts.

    The templates compare the two counts: when they are equal, both are the
    paper count's hole (equal strings), else each its own.
    """
    equal = header["full_count"] == header["paper_count"]
    return {
        **header,
        "paper_count": hole("paper_count"),
        "full_count": hole("paper_count" if equal else "full_count"),
        "papers_word": hole("papers_word"),
    }


def count_values(header: Mapping[str, object]) -> dict[str, Sized]:
    """The header's counts as the header line's holes take them (escaped, sized)."""
    papers, full = str(header["paper_count"]), str(header["full_count"])
    # The counts are numbers (ASCII, nothing to escape); the word is the catalogue's.
    return {
        "paper_count": Sized(papers, len(papers)),
        "full_count": Sized(full, len(full)),
        "papers_word": sized(escaped(str(header["papers_word"]))),
    }
