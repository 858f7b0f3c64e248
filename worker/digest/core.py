"""The digest core: which papers each subscriber gets on a listing date, and how they are shown.

`DayDigest` is the one place that answers "which papers does this subscriber
get on this day, and how is that shown": dispatch and sending
(worker/delivery/dispatch.py, worker/delivery/sending.py), `newsletter digest preview`, the
digest web page (newsletter/digests.py) and translation planning
(worker/translation/job.py) all ask it. It is free of Flask: the session and
settings are passed in. It owns the bilingual decision (through
newsletter/languages.py), the sections (each distinct keyword line matched
once per day) and the rendering of one reader's digest as an email or as the
web page, assembled from pieces rendered once per day:
worker/digest/fragments.py (the day's pieces and their bounded caches),
worker/digest/assembly.py (one digest from them, within the HTML size
budget of worker/digest/layout.py), worker/digest/entries.py (one paper's
entry) and worker/digest/text.py (the plain-text part's wrapping). A reader
is worker/digest/reader.py's `Reader`; an email comes out as
worker/digest/rendered.py's `DigestEmail`.

Late papers (issue 10). A paper can reach us for a listing date D after D
completed (ingest's deadline, worker/arxiv/ingest.py): it is stored under D with
Paper.updated_at after ListingDay.completed_at of D (updated_at, not
created_at: a newer version that arrives late is a late announcement too).
Decisions:
- A digest of date D' carries the late papers of the LATE_LOOKBACK_DATES
  listing dates before D' (a week). Older late papers are only on their own
  day (`newsletter digest preview`, the web page of D): a digest is news.
- `load_day` (worker/digest/loading.py) loads them with the day's papers, so every DayDigest of D'
  (dispatch, sending, a resend after a crash, the web page) can render a
  stored row that refers to them; they are never matched as D' papers.
- Which late papers a reader gets is decided at dispatch (worker/delivery/dispatch.py):
  `late_matches` says which late papers the reader's lines match (the same
  rules: replacements only for readers who tick them), dispatch removes
  those the reader already had or was not due, and `sections(..., late=)`
  puts them in the section of each keyword they match, before the day's
  papers (so the per-keyword limit of the email never hides them), oldest
  listing date first. The entry carries "listed <its date>, arrived late".
"""

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.languages import is_bilingual, target_language
from newsletter.locales import ENGLISH, subscriber_locale
from newsletter.models import (
    AnnounceType,
    Paper,
    Translation,
)
from worker.digest.assembly import Request, assemble_digest
from worker.digest.fragments import DayFragments
from worker.digest.line_matches import ALWAYS_INCLUDED, LineMatches
from worker.digest.loading import load_day, load_span, load_tldrs, load_translations
from worker.digest.reader import Reader, subscriber_zone
from worker.digest.relevance import order_sections
from worker.digest.rendered import DigestEmail

_TYPE_ORDER = {
    AnnounceType.NEW: 0,
    AnnounceType.CROSS: 1,
    AnnounceType.REPLACE: 2,
    AnnounceType.REPLACE_CROSS: 3,
}

# (keyword, arXiv ids) in the subscriber's keyword order, as fixed at dispatch.
Sections = list[tuple[str, list[str]]]
# Sections as a delivery row stores them (JSON: each a list, not a tuple) or as above.
StoredSections = Sequence[Sequence[Any]]
Key = TypeVar("Key", bound=Hashable)


class DayDigest:
    """One listing date's digests: which papers each reader gets, rendered as email or page.

    The day's papers are read once; translations on first need; every
    distinct keyword line is matched once, however many readers share it;
    every paper's entry is rendered once per variant (worker/digest/fragments.py).
    `papers` may hold late papers of earlier listing dates (see the module
    docstring): they are rendered when a reader's sections name them, and
    matched apart from the day's own.
    """

    def __init__(
        self,
        listing_date: date,
        papers: dict[str, Paper],
        config: Settings,
        load_translations: Callable[[dict[str, Paper], str], dict[str, Translation]] | None = None,
        first_listing_date: date | None = None,
        *,
        load_tldrs: Callable[[dict[str, Paper]], dict[tuple[str, str], str]] | None = None,
    ):
        self.listing_date = listing_date
        # A digest of several listing dates (weekly: worker/delivery/weekly.py)
        # covers first_listing_date..listing_date; its papers are all its own.
        self.first_listing_date = first_listing_date or listing_date
        self.papers = papers
        # Papers of an earlier listing date: late papers (`load_late_papers`).
        self.late = {
            arxiv_id: paper
            for arxiv_id, paper in papers.items()
            if paper.listing_date is not None and paper.listing_date < self.first_listing_date
        }
        own = {i: p for i, p in papers.items() if i not in self.late} if self.late else papers
        self.max_per_keyword: int = config.DIGEST_MAX_PER_KEYWORD
        self.target_language: str = config.TRANSLATION_LANGUAGE
        self._load_translations = load_translations or (lambda papers, language: {})
        self._translations: dict[str, Translation] | None = None
        self._load_tldrs = load_tldrs or (lambda papers: {})
        self._own = LineMatches(own, lambda p: (_TYPE_ORDER[p.announce_type], p.arxiv_id))
        # Late papers: oldest listing date first.
        self._late = LineMatches(
            self.late, lambda p: (p.listing_date, _TYPE_ORDER[p.announce_type], p.arxiv_id)
        )
        self._target_name: str | None = config.TRANSLATION_LANGUAGE_NAME
        # Made on first use. Explicit, not cached_property: compiled with mypyc
        # (setup.py), a cached_property is made again on every use.
        self._fragments: DayFragments | None = None
        self._tldr_texts: dict[tuple[str, str], str] | None = None
        self._paper_tiers: dict[str, int] | None = None

    @property
    def fragments(self) -> DayFragments:
        """The day's rendered pieces, made when the first digest is rendered."""
        if self._fragments is None:
            target = target_language(self.target_language, self._target_name)
            self._fragments = DayFragments(
                self.papers, target, self.translations, self.first_listing_date, self.tldrs
            )
        return self._fragments

    @classmethod
    def load(
        cls,
        session: Session,
        config: Settings,
        listing_date: date,
        first_listing_date: date | None = None,
    ) -> "DayDigest":
        """The day as stored (from `first_listing_date` on: a weekly digest's dates).

        Translations are read from `session` when first needed.
        """
        if first_listing_date is None:
            papers = load_day(session, listing_date)
        else:
            papers = load_span(session, first_listing_date, listing_date)
        return cls(
            listing_date,
            papers,
            config,
            lambda papers, language: load_translations(session, papers, language),
            first_listing_date,
            load_tldrs=lambda papers: load_tldrs(session, papers),
        )

    @classmethod
    def from_rows(
        cls,
        listing_date: date,
        papers: dict[str, Paper],
        translations: dict[str, Translation],
        config: Settings,
    ) -> "DayDigest":
        """A day from rows already in hand (tests, benchmarks)."""
        return cls(listing_date, papers, config, lambda _papers, _language: translations)

    def is_bilingual(self, reader: Reader) -> bool:
        """Whether the reader's digest is English + TRANSLATION_LANGUAGE."""
        return is_bilingual(reader.language, self.target_language)

    def tldrs(self) -> dict[tuple[str, str], str]:
        """The finished TL;DRs of the day's paper versions, by (arXiv id, language)."""
        if self._tldr_texts is None:
            self._tldr_texts = self._load_tldrs(self.papers)
        return self._tldr_texts

    def translations(self) -> dict[str, Translation]:
        if self._translations is None:
            self._translations = self._load_translations(self.papers, self.target_language)
        return self._translations

    def sections(
        self, readers: Mapping[Key, Reader], late: Mapping[Key, Collection[str]] | None = None
    ) -> dict[Key, Sections]:
        """Each reader's sections: keywords with their eligible papers, in the reader's order.

        Replacements only for readers who asked. `late` names, per reader, the
        late papers their digest carries (from `late_matches`, less what they
        had): each goes in the section of every keyword of theirs it matches.
        Inside a section, papers are in relevance order
        (worker/digest/relevance.py): late papers, then new papers and
        cross-lists, then replacements, each by title match, lines matched, id.
        """
        self._own.match({line for reader in readers.values() for line in reader.keywords})
        late = late or {}
        if late:
            self._late.match({line for key in late for line in readers[key].keywords})
        found: dict[Key, Sections] = {}
        for key, reader in readers.items():
            carried = late.get(key)
            sections = []
            titled: dict[str, frozenset[str]] = {}
            for keyword in reader.keywords:
                shown = self._own.shown(keyword, reader.include_replacements)
                titled[keyword] = self._own.titled(keyword)
                if carried:
                    extra = self._late.shown(keyword, reader.include_replacements)
                    shown = tuple(i for i in extra if i in carried) + shown
                    titled[keyword] |= self._late.titled(keyword)
                if shown:
                    sections.append((keyword, list(shown)))
            found[key] = order_sections(sections, titled, self._tiers().__getitem__)
        return found

    def _tiers(self) -> dict[str, int]:
        """Each paper's first key in a section: late, new or cross-list, replacement."""
        if self._paper_tiers is None:
            self._paper_tiers = {
                arxiv_id: 0
                if arxiv_id in self.late
                else 1
                if paper.announce_type in ALWAYS_INCLUDED
                else 2
                for arxiv_id, paper in self.papers.items()
            }
        return self._paper_tiers

    def late_matches(self, readers: Mapping[Key, Reader]) -> dict[Key, set[str]]:
        """The late papers each reader's lines match (same rules as `sections`); only readers with any."""
        if not self.late:
            return {}
        self._late.match({line for reader in readers.values() for line in reader.keywords})
        found: dict[Key, set[str]] = {}
        for key, reader in readers.items():
            ids = {
                i
                for keyword in reader.keywords
                for i in self._late.shown(keyword, reader.include_replacements)
            }
            if ids:
                found[key] = ids
        return found

    def current(self, sections: StoredSections) -> Sections:
        """`sections` (maybe a row's stored JSON) without papers no longer on this day.

        A paper re-announced on a later date moves there. Late papers (loaded
        with the day) stay.
        """
        contains = self.papers.__contains__
        # Most rows name only papers still on the day: checked in C, copied as they are.
        if all(ids and all(map(contains, ids)) for _, ids in sections):
            return [(keyword, list(ids)) for keyword, ids in sections]
        kept = [(keyword, [i for i in ids if i in self.papers]) for keyword, ids in sections]
        return [(keyword, ids) for keyword, ids in kept if ids]

    def render_email(
        self,
        reader: Reader,
        sections: StoredSections,
        generated_at: datetime,
        links: dict[str, str],
    ) -> DigestEmail:
        """The reader's digest email with their own `links`."""
        return self._render(reader, sections, generated_at, links, self.max_per_keyword)

    def render_page(
        self,
        reader: Reader,
        sections: StoredSections,
        generated_at: datetime,
        links: dict[str, str],
    ) -> str:
        """The reader's digest as the "view in browser" page: every paper in full."""
        return self._render(reader, sections, generated_at, links, None).html

    def _render(
        self,
        reader: Reader,
        sections: StoredSections,
        generated_at: datetime,
        links: dict[str, str],
        max_per_keyword: int | None,
    ) -> DigestEmail:
        request = Request(
            keywords=reader.keywords,
            timezone=reader.timezone,
            zone=subscriber_zone(reader.timezone),
            bilingual=self.is_bilingual(reader),
            sections=self.current(sections),
            generated_at=generated_at,
            links=links,
            max_per_keyword=max_per_keyword,
            first_listing_date=self.first_listing_date,
            tldr=reader.tldr,
        )
        # The chrome in the reader's language: 简体中文 for English + 简体中文 digests.
        locale = subscriber_locale(reader.language) if request.bilingual else ENGLISH
        fragments = self.fragments.in_locale(locale)
        return assemble_digest(fragments, self.listing_date, request)
