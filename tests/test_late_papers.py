"""Late papers (issue 10): a paper that reaches us after its day's digests goes, once,
into each matching subscriber's next digest, marked with its own listing date.

The scenario runs the real pieces: ingest's storing and completeness rule
(worker/arxiv/store.py, completeness.py) for days with a `cs` and a `math` group, the real
dispatch and drain (worker/delivery/dispatch.py, worker/delivery/sending.py) to aiosmtpd on
127.0.0.1, the digest web page, on SQLite and (with TEST_DATABASE_URL)
PostgreSQL.
"""

from collections import Counter
from datetime import date

import pytest
from smtp_server import SmtpSink, run_smtp
from sqlalchemy import select
from test_delivery import add_subscriber, deliveries

from newsletter import db
from newsletter.config import settings
from newsletter.models import DeliveryStatus, ListingDay, Paper
from newsletter.tokens import subscriber_links
from worker.arxiv.completeness import note_uncovered_groups, update_listing_day
from worker.arxiv.items import FeedItem
from worker.arxiv.store import IngestSummary, commit, store_group
from worker.delivery.dispatch import dispatch_digests
from worker.delivery.late import late_due
from worker.delivery.preview import preview_digest
from worker.digest.core import DayDigest
from worker.digest.loading import late_window_start, load_day
from worker.translation.job import papers_to_translate

D, NEXT, THIRD = date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)
DP, SR = "diffusion policy", "sparse regression"
MARK = "listed Mon 23 Nov, arrived late"


def item(arxiv_id: str, title: str, category: str, announce_type: str = "new") -> FeedItem:
    return FeedItem(
        arxiv_id=arxiv_id,
        version=1,
        title=title,
        abstract=f"We study {title.lower()}.",
        authors=["A. Author"],
        categories=[category],
        announce_type=announce_type,
    )


MATH_D = item("2611.00001", "Sparse regression with heavy tails", "math.ST")
LATE = item("2611.00002", "Diffusion policy learning for dexterous grasping", "cs.RO")
MATH_NEXT = item("2611.00101", "Sparse regression under group structure", "math.ST")
CS_NEXT = item("2611.00102", "Graph colouring heuristics", "cs.DM")
CS_THIRD = item("2611.00201", "A diffusion policy for legged robots", "cs.RO")
MATH_THIRD = item("2611.00202", "Ergodic averages along primes", "math.DS")


def ingest(listing_date: date, group: str, items: list[FeedItem]) -> bool:
    """Store one group's feed dated `listing_date` as the poll does; whether the day is complete."""
    summary = IngestSummary(listing_date)
    store_group(summary, listing_date, group, "rss", items, feed_date=listing_date)
    complete = update_listing_day(listing_date, settings().ARXIV_ARCHIVE_GROUPS)
    commit()
    return complete


def complete_at_deadline(listing_date: date) -> None:
    update_listing_day(listing_date, settings().ARXIV_ARCHIVE_GROUPS, at_deadline=True)
    note_uncovered_groups(listing_date, settings().ARXIV_ARCHIVE_GROUPS)
    commit()


def texts(sink: SmtpSink) -> dict[str, list[tuple[str, str, str]]]:
    """Recipient -> [(subject, text, html)] in the order sent."""
    found: dict[str, list] = {}
    for message in sink.messages():
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        found.setdefault(message["To"], []).append((message["Subject"], text, html))
    return found


def abs_url(paper: FeedItem) -> str:
    return f"https://arxiv.org/abs/{paper.arxiv_id}"


@pytest.fixture
def groups(config):
    config["ARXIV_ARCHIVE_GROUPS"] = ["cs", "math"]


@pytest.fixture
def sink(config):
    """A recording SMTP server; the app under test sends to it."""
    handler = SmtpSink()
    with run_smtp(handler) as port:
        config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none")
        yield handler


def test_a_paper_late_for_a_sent_day_goes_once_into_the_next_digest(groups, sink, app):
    # Day D: math is full, cs is empty; the day waits, then completes at the deadline.
    assert not ingest(D, "math", [MATH_D])
    assert not ingest(D, "cs", [])
    complete_at_deadline(D)
    ada = add_subscriber("ada@example.com", [DP, SR])  # gets D's math paper
    eve = add_subscriber("eve@example.com", [DP])  # nothing on D, nothing of her own on NEXT
    first = dispatch_digests(D)
    assert (first.queued, first.skipped, first.late_papers) == (1, 1, 0)
    sent = texts(sink)
    assert abs_url(MATH_D) in sent["ada@example.com"][0][1]
    assert abs_url(LATE) not in sent["ada@example.com"][0][1]

    # The cs feed comes after D's digests: stored under D, after D completed.
    assert ingest(D, "cs", [LATE])
    session = db.session()
    late = session.scalar(select(Paper).where(Paper.arxiv_id == LATE.arxiv_id))
    assert late.listing_date == D
    assert late.updated_at > session.get(ListingDay, D).completed_at

    # Fay subscribes now, and a freshly started worker makes her row for D: it
    # holds the late paper already, so NEXT must not repeat it.
    fay = add_subscriber("fay@example.com", [DP])
    assert dispatch_digests(D).queued == 1
    assert abs_url(LATE) in texts(sink)["fay@example.com"][0][1]
    # Joe subscribes after D's digests: no row for D, so none of D's papers.
    joe = add_subscriber("joe@example.com", [DP])

    assert not ingest(NEXT, "math", [MATH_NEXT])
    assert ingest(NEXT, "cs", [CS_NEXT])
    summary = dispatch_digests(NEXT)
    assert (summary.queued, summary.skipped, summary.late_papers) == (2, 2, 2)
    rows = {(row.subscriber_id, row.listing_date): row for row in deliveries()}
    assert rows[ada.id, NEXT].sections == [
        [DP, [LATE.arxiv_id]],
        [SR, [MATH_NEXT.arxiv_id]],
    ]
    # Eve's digest would be empty without it: it goes with the late paper alone.
    assert rows[eve.id, NEXT].sections == [[DP, [LATE.arxiv_id]]]
    assert rows[eve.id, NEXT].status is DeliveryStatus.SENT
    assert rows[fay.id, NEXT].status is DeliveryStatus.SKIPPED
    assert rows[joe.id, NEXT].status is DeliveryStatus.SKIPPED

    sent = texts(sink)
    subject, text, html = sent["ada@example.com"][1]
    assert "Tue 24 Nov 2026 · 2 papers" in subject
    assert text.count(abs_url(LATE)) == 1 and text.count(MARK) == 1
    assert html.count(MARK) == 1
    # In the section of the keyword it matches: after DP's heading, before SR's.
    assert text.index(DP + " · 1 paper") < text.index(MARK) < text.index(SR + " · 1 paper")
    subject, text, html = sent["eve@example.com"][0]
    assert "1 paper" in subject and MARK in text and MARK in html
    assert "joe@example.com" not in sent

    # A second dispatch and the next date never repeat it.
    again = dispatch_digests(NEXT)
    assert (again.queued, again.skipped, again.drain_jobs) == (0, 0, 0)
    assert not ingest(THIRD, "cs", [CS_THIRD])
    assert ingest(THIRD, "math", [MATH_THIRD])
    assert dispatch_digests(THIRD).late_papers == 0
    # Each subscriber read the late paper exactly once, Joe never.
    times = Counter(
        to for to, messages in texts(sink).items() for m in messages if abs_url(LATE) in m[1]
    )
    assert times == Counter({"ada@example.com": 1, "eve@example.com": 1, "fay@example.com": 1})

    # A resend after a crash (a fresh process reading NEXT) renders the same
    # papers: the late paper is loaded with the day, and the web page shows it.
    day = DayDigest.load(db.session(), settings(app), NEXT)
    stored = rows[ada.id, NEXT].sections
    assert [[keyword, ids] for keyword, ids in day.current(stored)] == stored
    assert MARK in preview_digest(db.session(), settings(app), ada, NEXT).text
    view = subscriber_links(settings(app), ada.public_id, NEXT)["view_url"]
    page = app.test_client().get(view.removeprefix("http://digest.test"))
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert body.count(MARK) == 1 and abs_url(LATE) in body


def test_a_late_paper_matches_under_the_same_rules_and_only_within_the_look_back(groups, sink, app):
    replacement = item("2611.00003", "Diffusion policy, revisited", "cs.LG", "replace")
    assert not ingest(D, "math", [MATH_D])
    complete_at_deadline(D)
    plain = add_subscriber("plain@example.com", [DP])
    ticks = add_subscriber("ticks@example.com", [DP])
    ticks.include_replacements = True
    db.session().commit()
    assert dispatch_digests(D).skipped == 2
    assert ingest(D, "cs", [LATE, replacement])
    assert not ingest(NEXT, "math", [MATH_NEXT])
    assert ingest(NEXT, "cs", [CS_NEXT])
    dispatch_digests(NEXT)
    rows = {(row.subscriber_id, row.listing_date): row for row in deliveries()}
    # Replacements only for those who tick them, as on the day itself.
    assert rows[plain.id, NEXT].sections == [[DP, [LATE.arxiv_id]]]
    assert rows[ticks.id, NEXT].sections == [[DP, [LATE.arxiv_id, replacement.arxiv_id]]]

    # The window: a digest carries late papers of the 7 listing dates before it.
    assert late_window_start(NEXT) == date(2026, 11, 13)
    assert {LATE.arxiv_id, replacement.arxiv_id} <= set(load_day(db.session(), NEXT))
    assert MATH_D.arxiv_id not in load_day(db.session(), NEXT)  # on time: D's only
    last = date(2026, 12, 3)  # the 7th listing date after D carries it, the 8th not
    assert late_window_start(last) == D
    assert LATE.arxiv_id in load_day(db.session(), last)
    assert LATE.arxiv_id not in load_day(db.session(), date(2026, 12, 4))


@pytest.mark.parametrize(
    ("rows", "owed"),
    [
        ([], set()),  # no row for the paper's date: joined later
        ([(D, [])], {"L"}),  # D skipped for want of papers: owed
        ([(D, [["dp", ["X"]]])], {"L"}),  # D sent without it: owed
        ([(D, [["dp", ["L"]]])], set()),  # D had it
        ([(D, [["dp", ["X"]]]), (NEXT, [["dp", ["L"]]])], set()),  # NEXT carried it
        ([(date(2026, 11, 20), [["dp", ["L"]]]), (D, [])], {"L"}),  # an older version's row
    ],
)
def test_late_due_owes_a_paper_to_a_row_of_its_date_that_lacked_it(rows, owed):
    paper = Paper(arxiv_id="L", listing_date=D)
    assert late_due({"L"}, {"L": paper}, rows) == owed


def test_translation_plans_the_late_papers_a_bilingual_digest_may_carry(groups, app):
    assert not ingest(D, "math", [MATH_D])
    assert not ingest(D, "cs", [])
    complete_at_deadline(D)
    assert ingest(D, "cs", [LATE])  # after D completed: late
    assert not ingest(NEXT, "math", [MATH_NEXT])
    assert ingest(NEXT, "cs", [CS_NEXT])
    add_subscriber("mei@example.com", [DP, SR], language="en+zh")
    planned = {paper.arxiv_id for paper in papers_to_translate(db.session(), NEXT, settings(app))}
    assert planned == {LATE.arxiv_id, MATH_NEXT.arxiv_id}
