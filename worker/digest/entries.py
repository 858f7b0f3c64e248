"""One paper as the digest shows it: title, authors, subjects, abstract, translation, highlights.

Used by worker/digest/fragments.py, once per paper and language variant per
listing date (pure; no I/O past the bundled category names). Owns the
`PaperEntry` the entry macros (emails/templates/digest/parts.*) receive, its
rendered pieces (`Listing`) and which translation of a paper may be shown;
the escaped, highlighted title and abstract are worker/digest/marks.py's. What differs between subscribers (highlights, "matched:") is not
here: it fills the holes of the rendered entry.
"""

import json
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property, lru_cache
from pathlib import Path

from newsletter.languages import TargetLanguage
from newsletter.locales import ENGLISH, N_, lgettext, lngettext, short_day
from newsletter.models import AnnounceType, Paper, Translation, TranslationStatus
from worker.digest.pieces import Fragment, Sized, fragment, hole, sized
from worker.digest.tex import tex_to_text
from worker.digest.text import limit_lines

CATEGORIES_PATH = Path(__file__).resolve().parents[2] / "emails" / "data" / "categories.json"

# Authors shown in the email before "et al." (the web page shows all).
MAX_AUTHORS = 10
# A shortened entry (worker/digest/layout.py): its authors, and its abstract
# cut near this many characters (a Chinese character says about as much as an
# English word).
SHORT_AUTHORS = 3
SHORT_ABSTRACT = 280
SHORT_TRANSLATION = 100

# Shown in the chrome's locale (make_entry); N_ marks them for the catalogue.
_BADGES = {
    AnnounceType.CROSS: N_("cross-list"),
    AnnounceType.REPLACE: N_("replacement"),
    AnnounceType.REPLACE_CROSS: N_("replacement, cross-list"),
}


@cache
def category_names() -> dict[str, str]:
    """arXiv category code -> name, e.g. "cs.LG" -> "Machine Learning"."""
    return json.loads(CATEGORIES_PATH.read_text(encoding="utf-8"))["categories"]


@dataclass(frozen=True, eq=False)
class PaperEntry:
    """One paper as the entry macros show it, in one variant (English or bilingual, email or page)."""

    arxiv_id: str
    anchor: str
    title: str
    abs_url: str
    pdf_url: str
    html_url: str  # arXiv's HTML rendering of the paper
    authors: str
    subjects: str
    badge: str | None
    abstract: str
    comments: str | None
    journal_ref: str | None
    doi: str | None
    doi_url: str | None
    language: str  # the translation's code, for lang="..."
    # A full entry shortened to fit the email's budget shows these.
    short_authors: str
    short_abstract: str
    translated_title: str | None = None
    translated_abstract: str | None = None
    translation_note: str | None = None
    short_translated_abstract: str | None = None
    # Set on a paper of an earlier listing date that came after that day's
    # digests (a late paper, worker/digest/core.py): "listed Thu 26 Nov, arrived late".
    listed: str | None = None
    # For readers who ticked TL;DR (worker/translation/tldr.py), when written in time.
    tldr: str | None = None
    translated_tldr: str | None = None


def listed_note(paper: Paper, listing_date: date | None, locale: str = ENGLISH) -> str | None:
    """The mark of a paper listed before the digest's `listing_date` (a late paper), else None."""
    listed = paper.listing_date
    if listing_date is None or listed is None or listed >= listing_date:
        return None
    return lgettext(locale, "listed %(day)s, arrived late", day=short_day(locale, listed))


def make_entry(
    paper: Paper,
    full_page: bool,
    target: TargetLanguage | None,
    translation: Translation | None,
    listed: str | None = None,
    tldrs: tuple[str | None, str | None] = (None, None),
    locale: str = ENGLISH,
) -> PaperEntry:
    """The paper's entry; `target` is the second language of a bilingual digest, else None.

    `listed` marks a late paper (see `listed_note`); `tldrs` are its English and
    translated TL;DRs (None: not shown). The entry's own words (badge, notes) are
    in `locale`, the chrome's (newsletter/locales.py).
    """
    authors = list(paper.authors)
    if not full_page and len(authors) > MAX_AUTHORS:
        count = len(paper.authors)
        authors = authors[:MAX_AUTHORS] + [
            lngettext(locale, "et al. (%(num)s author)", "et al. (%(num)s authors)", count)
        ]
    names = category_names()
    abstract = readable(paper.abstract)
    doi = paper.doi.split()[0] if paper.doi and paper.doi.strip() else None
    translated = {}
    if target is not None and translation is not None:
        translated_abstract = readable(translation.abstract)
        translated = {
            "translated_title": readable(translation.title),
            "translated_abstract": translated_abstract,
            "short_translated_abstract": cut_text(translated_abstract, SHORT_TRANSLATION),
        }
    elif target is not None:
        # The language by its English name in English chrome, by its own name otherwise.
        name = target.short_name if locale == ENGLISH else target.native_name
        note = lgettext(locale, "%(language)s translation not available today.", language=name)
        translated = {"translation_note": note}
    return PaperEntry(
        arxiv_id=paper.arxiv_id,
        anchor=f"p-{paper.arxiv_id}",
        title=readable(paper.title),
        abs_url=f"https://arxiv.org/abs/{paper.arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{paper.arxiv_id}",
        html_url=f"https://arxiv.org/html/{paper.arxiv_id}",
        authors=", ".join(authors),
        subjects="; ".join(f"{names[c]} ({c})" if c in names else c for c in paper.categories),
        badge=lgettext(locale, badge) if (badge := _BADGES.get(paper.announce_type)) else None,
        abstract=abstract,
        comments=_clean(paper.comments),
        journal_ref=_clean(paper.journal_ref),
        doi=doi,
        doi_url=f"https://doi.org/{doi}" if doi else None,
        language=target.code if target is not None else "en",
        short_authors=", ".join(paper.authors[:SHORT_AUTHORS])
        + (" et al." if len(paper.authors) > SHORT_AUTHORS else ""),
        short_abstract=cut_text(abstract, SHORT_ABSTRACT),
        listed=listed,
        tldr=readable(tldrs[0]) if tldrs[0] else None,
        translated_tldr=readable(tldrs[1]) if tldrs[1] and target is not None else None,
        **translated,
    )


class Listing:
    """One paper in one variant: its entry, size estimates and rendered pieces (made on first use)."""

    def __init__(
        self, entry: PaperEntry, weight: int, short_weight: int, title_weight: int, html, text
    ):
        self.entry = entry
        self.arxiv_id = entry.arxiv_id
        # The full entry's, the short one's and the title line's, for the byte
        # budget (worker/digest/layout.py).
        self.weight = weight
        self.short_weight = short_weight
        self.title_weight = title_weight
        self._html = html
        self._text = text

    @cached_property
    def full_html(self) -> Fragment:
        rendered = self._html.full_entry(
            self.entry, hole("title_html"), hole("matched"), hole("abstract_html")
        )
        return fragment(rendered, holes=("title_html", "matched", "abstract_html"))

    @cached_property
    def full_text(self) -> Fragment:
        rendered = self._text.full_entry(self.entry, hole("number"), hole("matched"))
        return fragment(rendered, text_part=True, holes=("number", "matched"))

    @cached_property
    def short_html(self) -> Fragment:
        rendered = self._html.short_entry(
            self.entry, hole("title_html"), hole("matched"), hole("page")
        )
        return fragment(rendered, holes=("title_html", "matched", "page"))

    @cached_property
    def short_text(self) -> Fragment:
        rendered = self._text.short_entry(self.entry, hole("number"), hole("matched"), hole("page"))
        return fragment(rendered, text_part=True, holes=("number", "matched", "page"))

    @cached_property
    def title_html(self) -> Sized:
        """An item of a title list (worker/digest/assembly.py opens and closes the list)."""
        return sized(str(self._html.title_entry(self.entry)))

    @cached_property
    def above_html(self) -> Fragment:
        rendered = self._html.above_entry(self.entry, hole("page"), hole("first_keyword"))
        return fragment(rendered, holes=("page", "first_keyword"))

    @cached_property
    def title_text(self) -> str:
        return limit_lines(str(self._text.title_entry(self.entry)))

    @cached_property
    def above_text(self) -> Fragment:
        """Above a full entry listed elsewhere (the web page)."""
        rendered = self._text.above_entry(self.entry, hole("first_keyword"), None)
        return fragment(rendered, text_part=True, holes=("first_keyword",))

    @cached_property
    def numbered_above_text(self) -> Fragment:
        """Above a full entry in this message."""
        rendered = self._text.above_entry(self.entry, hole("first_keyword"), hole("number"))
        return fragment(rendered, text_part=True, holes=("first_keyword", "number"))


def finished_translation(
    paper: Paper, translations: dict[str, Translation] | None
) -> Translation | None:
    """The finished translation of this very version of the paper, if any."""
    translation = (translations or {}).get(paper.arxiv_id)
    if (
        translation is not None
        and translation.status == TranslationStatus.DONE
        and translation.version == paper.version
        and translation.title
        and translation.abstract
    ):
        return translation
    return None


def cut_text(text: str, limit: int) -> str:
    """`text` cut near `limit` characters at a space (any character in CJK text), with "…"."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut < limit * 2 // 3:  # no space near the end: CJK, or one long word
        cut = limit
    return text[:cut].rstrip(" ,;:.，、；：") + "…"


def _clean(value: str | None) -> str | None:
    return (readable(value) if value else "") or None


# A day's papers recur in thousands of digests, and the day's fragments are
# rebuilt by each worker process: convert each text once per process.
@lru_cache(maxsize=16384)
def readable(text: str) -> str:
    """TeX turned into Unicode text, whitespace collapsed."""
    return " ".join(tex_to_text(text).split())
