"""The keyword preview's index of the last listing dates, one per process (newsletter/preview.py).

What is ours is the speed (~1,500 papers a day, 5 days, 20 lines, as the
reader types). Each of the last PREVIEW_DAYS complete listing dates is loaded
once per process, with a word index (words of title and abstract, category,
author-name words -> a bitset of the day's papers). A line's candidates are
the papers holding every word its phrases, cat: and au: need: a superset of
its matches, since `match_papers` decides each paper on its own text, so
`DayDigest.sections` over the candidates gives exactly the whole day's
section. Only a line's candidates are matched (and tokenized, by matching's
own LRU), one line at a time, and each line's section is kept per day
(SECTIONS_PER_DAY), so typing one more line matches only that line.
"""

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import ListingDay, Paper
from worker.digest.core import DayDigest, Reader
from worker.digest.matching import Query, parse_keyword, tokenize

PREVIEW_DAYS = 5  # listing dates shown per line
# Lines' sections kept per day, the most recently asked: a typical line's ids take
# ~200 bytes (1,000 lines: ~0.2 MiB a day); a line matching a whole 1,500-paper
# day ~12 KiB, so at worst ~12 MiB a day.
SECTIONS_PER_DAY = 1000

DayKey = tuple  # (completed_at, paper count, latest updated_at)


class DayIndex:
    """One listing date's papers (detached rows) and their word bitsets."""

    def __init__(self, listing_date: date, key: DayKey, papers: list[Paper]):
        self.listing_date = listing_date
        self.key = key
        self.ids = [paper.arxiv_id for paper in papers]
        self.papers = {paper.arxiv_id: paper for paper in papers}
        self.everything = (1 << len(papers)) - 1
        words: dict[str, int] = defaultdict(int)
        categories: dict[str, int] = defaultdict(int)
        author_words: dict[str, int] = defaultdict(int)
        for n, paper in enumerate(papers):
            bit = 1 << n
            for word in {w for w, _, _ in tokenize(paper.title) + tokenize(paper.abstract)}:
                words[word] |= bit
            for category in paper.categories:  # as match_papers reads them
                categories[category.lower()] |= bit
                categories[category.lower().split(".")[0]] |= bit
            for word in {w for name in paper.authors for w, _, _ in tokenize(name)}:
                author_words[word] |= bit
        self.words = dict(words)
        self.categories = dict(categories)
        self.author_words = dict(author_words)
        # (line, include_replacements) -> the line's section on this day, most recent last.
        self._sections: OrderedDict[tuple[str, bool], tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def section(self, line: str, include_replacements: bool, config: Settings) -> tuple[str, ...]:
        """The line's papers on this day, as the digest shows them: `DayDigest.sections`.

        Asked of the line's candidates alone, one line at a time, so a cat: or au:
        line never has texts tokenized, and a phrase only its candidates'.
        """
        key = (line, include_replacements)
        with self._lock:
            if key in self._sections:
                self._sections.move_to_end(key)
                return self._sections[key]
        bits = self.candidates(parse_keyword(line))
        reader = Reader((line,), "en", "UTC", include_replacements)
        found = DayDigest(self.listing_date, self.papers_in(bits), config).sections({0: reader})[0]
        ids = tuple(found[0][1]) if found else ()
        with self._lock:
            self._sections[key] = ids
            while len(self._sections) > SECTIONS_PER_DAY:
                self._sections.popitem(last=False)
        return ids

    def candidates(self, query: Query) -> int:
        """A bitset of the papers that may match `query`: all it requires is there."""
        found = self.everything
        for phrase in query.phrases:
            found &= _any(
                _all(self.words, variant, self.everything) for variant in phrase.variants()
            )
        for category in query.categories:
            found &= self.categories.get(category, 0)
        for author in query.authors:
            found &= _all(self.author_words, author, self.everything)
        return found

    def papers_in(self, bits: int) -> dict[str, Paper]:
        digits = bin(bits)[:1:-1]  # lowest bit first
        return {self.ids[n]: self.papers[self.ids[n]] for n, c in enumerate(digits) if c == "1"}


def _all(index: Mapping[str, int], words: Iterable[str], everything: int) -> int:
    found = everything
    for word in words:
        found &= index.get(word, 0)
    return found


def _any(bitsets: Iterable[int]) -> int:
    found = 0
    for bits in bitsets:
        found |= bits
    return found


class DayCache:
    """The last PREVIEW_DAYS complete listing dates' indexes, one per process."""

    def __init__(self) -> None:
        self._days: dict[date, DayIndex] = {}
        self._lock = threading.Lock()

    def days(self, session: Session) -> list[DayIndex]:
        """The current days, newest first; changed or new ones (re)built."""
        wanted = day_keys(session, PREVIEW_DAYS)
        with self._lock:  # one build at a time; others wait rather than build twice
            kept = {d: self._days[d] for d in wanted if d in self._days}
            for listing_date, key in wanted.items():
                if listing_date not in kept or kept[listing_date].key != key:
                    kept[listing_date] = load_index(session, listing_date, key)
            self._days = kept
            return [kept[d] for d in wanted]


def day_keys(session: Session, count: int) -> dict[date, DayKey]:
    """The last `count` complete listing dates, newest first, each with its cache key."""
    completed = session.execute(
        select(ListingDay.listing_date, ListingDay.completed_at)
        .where(ListingDay.completed_at.is_not(None))
        .order_by(ListingDay.listing_date.desc())
        .limit(count)
    ).all()
    stats = {
        row[0]: (row[1], row[2])
        for row in session.execute(
            select(Paper.listing_date, func.count(Paper.id), func.max(Paper.updated_at))
            .where(Paper.listing_date.in_([d for d, _ in completed]))
            .group_by(Paper.listing_date)
        )
    }
    return {d: (done, *stats.get(d, (0, None))) for d, done in completed}


def load_index(session: Session, listing_date: date, key: DayKey) -> DayIndex:
    papers = list(session.scalars(select(Paper).where(Paper.listing_date == listing_date)))
    for paper in papers:
        # Kept across requests: detached, with every column already loaded.
        session.expunge(paper)
    return DayIndex(listing_date, key, papers)
