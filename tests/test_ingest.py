import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from arxiv_server import DATA, Reply, fixture, with_pub_date
from sqlalchemy import func, select

from newsletter import db, replace_settings
from newsletter.cli import main
from newsletter.config import settings
from newsletter.models import AnnounceType, FeedFetch, ListingDay, Paper
from worker import calendar
from worker.arxiv import backfill, completeness, fetches, ingest
from worker.arxiv import feeds as arxiv
from worker.arxiv.items import FeedError

ET = ZoneInfo("America/New_York")
ALL = DATA / "rss_all-archives_2024-11-28.xml"
COMBINED = "rss_combined_cs.LG_cs.AI_cs.CL_stat.ML_2026-09-24.xml"
EMPTY = "rss_empty_feed_test-archive_2024-11-28.xml"
ERROR = "rss_error_feed_bad-archive.xml"
ATOM = "atom_combined_cs.LG_cs.AI_cs.CL_stat.ML_2026-09-24_constructed.xml"
DUE = date(2026, 9, 24)
COMBINED_DATE = "Thu, 24 Sep 2026 00:00:00 -0400"
SUMMARY_1504 = (
    "2024-11-28: 1504 items (926 new, 9 cross, 569 replace, 0 replace-cross); "
    "stored 1504 new, 0 updated, 0 unchanged"
)


def paper_count() -> int:
    return db.session().scalar(select(func.count(Paper.id)))


def paper(arxiv_id: str) -> Paper:
    return db.session().scalar(select(Paper).where(Paper.arxiv_id == arxiv_id))


# --- files ---


def test_full_day_file_is_stored_once(app):
    (summary,) = ingest.ingest_file(settings(), ALL)
    assert summary.line() == SUMMARY_1504
    assert summary.complete
    assert paper_count() == 1504
    session = db.session()
    by_type = dict(
        session.execute(
            select(Paper.announce_type, func.count()).group_by(Paper.announce_type)
        ).all()
    )
    assert by_type == {AnnounceType.NEW: 926, AnnounceType.CROSS: 9, AnnounceType.REPLACE: 569}
    assert set(session.scalars(select(Paper.listing_date))) == {date(2024, 11, 28)}
    day = session.get(ListingDay, date(2024, 11, 28))
    assert day.completed_at is not None
    first_updated = paper("2411.17700").updated_at

    (again,) = ingest.ingest_file(settings(), ALL)
    assert (again.stored_new, again.updated, again.unchanged) == (0, 0, 1504)
    assert paper_count() == 1504
    db.session().expire_all()
    assert paper("2411.17700").updated_at == first_updated
    assert session.get(ListingDay, date(2024, 11, 28)).completed_at == day.completed_at


def test_newer_version_updates_and_older_is_ignored(app, tmp_path):
    ingest.ingest_file(settings(), DATA / COMBINED)
    assert paper("2009.13987").version == 3
    newer = (
        fixture(COMBINED)
        .replace(b"2009.13987v3", b"2009.13987v4")
        .replace(
            b"<title>Random Polytope Descriptors</title>",
            b"<title>Random Polytope Descriptors, revised</title>",
        )
    )
    later = with_pub_date(newer, COMBINED_DATE, "Fri, 25 Sep 2026 00:00:00 -0400")
    (tmp_path / "later.xml").write_bytes(later)
    (summary,) = ingest.ingest_file(settings(), tmp_path / "later.xml")
    assert (summary.stored_new, summary.updated, summary.unchanged) == (0, 1, 3)
    row = paper("2009.13987")
    assert (row.version, row.title, row.listing_date) == (
        4,
        "Random Polytope Descriptors, revised",
        date(2026, 9, 25),
    )
    # The older day's file again: v3 does not overwrite v4.
    (summary,) = ingest.ingest_file(settings(), DATA / COMBINED)
    assert (summary.stored_new, summary.updated) == (0, 0)
    assert paper("2009.13987").version == 4


def test_stronger_announce_type_wins_the_same_day(app, tmp_path):
    cross_first = fixture(COMBINED)
    (tmp_path / "cross.xml").write_bytes(cross_first)
    as_new = cross_first.replace(
        b"<arxiv:announce_type>cross</arxiv:announce_type>",
        b"<arxiv:announce_type>new</arxiv:announce_type>",
    ).replace(b"rss/cs.LG+cs.AI+cs.CL+stat.ML", b"rss/stat")
    (tmp_path / "new.xml").write_bytes(as_new)
    ingest.ingest_file(settings(), tmp_path / "cross.xml")
    assert paper("2205.06398").announce_type is AnnounceType.CROSS
    (summary,) = ingest.ingest_file(settings(), tmp_path / "new.xml")
    assert summary.updated == 1
    assert paper("2205.06398").announce_type is AnnounceType.NEW
    ingest.ingest_file(settings(), tmp_path / "cross.xml")  # the weaker type again changes nothing
    assert paper("2205.06398").announce_type is AnnounceType.NEW


def test_partial_feed_does_not_complete_the_day(app):
    (summary,) = ingest.ingest_file(settings(), DATA / COMBINED)
    assert not summary.complete
    assert db.session().get(ListingDay, date(2026, 9, 24)).completed_at is None


def test_file_with_explicit_date(app):
    (summary,) = ingest.ingest_file(
        settings(), DATA / "api_legacy_search_cs-RO_2025-10-17.xml", date(2025, 10, 17)
    )
    assert summary.counts == {"new": 2}
    assert paper("2510.14968").listing_date == date(2025, 10, 17)
    assert not summary.complete  # an API search result is never a whole day


@pytest.mark.parametrize(
    ("count", "history", "reason"),
    [
        (0, [], "empty on an announcement day"),
        (0, [0] * 10, "empty on an announcement day"),  # empty is never a normal day
        (1, [], None),  # no history yet: only "not empty" is judged
        (4, [300] * 9, None),  # 9 listing dates are not enough history
        (4, [300] * 10, "under 20% of its median of 300 over its last 10 listing dates"),
        (59, [300] * 10, "under 20% of its median of 300 over its last 10 listing dates"),
        (60, [300] * 10, None),  # exactly 20% is enough
        # The median, not the mean: a few huge days do not make a normal one short.
        (40, [1000] * 4 + [100] * 6, None),
        (
            19,
            [1000] * 4 + [100] * 6,
            "under 20% of its median of 100 over its last 10 listing dates",
        ),
    ],
)
def test_shortfall_rule(count, history, reason):
    assert fetches.shortfall(count, history) == reason


def test_short_file_is_stored_but_does_not_cover_its_archives(app):
    group = "cs.LG+cs.AI+cs.CL+stat.ML"
    add_history(group, [300] * 10)
    (summary,) = ingest.ingest_file(settings(), DATA / COMBINED)
    warning = (
        f"{group}: only 4 items, under 20% of its median of 300 over its last 10 listing dates; "
        "waiting for a full feed"
    )
    assert summary.warnings == [warning]
    assert paper_count() == 4  # stored all the same
    fetch = db.session().scalar(select(FeedFetch).where(FeedFetch.listing_date == DUE))
    assert fetch.warning == warning
    assert completeness.covered_archives(DUE) == set()


def test_atom_announcement_file_takes_its_date_from_the_feed(app):
    result = run(app, "ingest", "--file", str(DATA / ATOM))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "2026-09-24: 4 items (2 new, 1 cross, 1 replace, 0 replace-cross); "
        "stored 4 new, 0 updated, 0 unchanged"
    )
    assert set(db.session().scalars(select(Paper.listing_date))) == {DUE}
    assert paper("2205.06398").announce_type is AnnounceType.CROSS
    fetch = db.session().scalar(select(FeedFetch))
    assert (fetch.archive_group, fetch.source, fetch.feed_date, fetch.warning) == (
        "cs.LG+cs.AI+cs.CL+stat.ML",
        "file",
        DUE,
        None,
    )
    # Its RSS twin is the same announcement: nothing new.
    (summary,) = ingest.ingest_file(settings(), DATA / COMBINED)
    assert (summary.stored_new, summary.updated, summary.unchanged) == (0, 0, 4)


def add_history(group: str, counts: list[int], before: date = date(2026, 9, 24)) -> None:
    """FeedFetch rows of `group` on the listing dates before `before`, newest first."""
    day = before
    for count in counts:
        day = calendar.previous_listing_date(day)
        db.session().add(
            FeedFetch(
                listing_date=day, archive_group=group, source="rss", feed_date=day, count_new=count
            )
        )
    db.session().commit()


# --- the scheduled poll over real HTTP ---


@pytest.fixture
def poll_config(config, server):
    config.update(
        ARXIV_RSS_URL=server.url + "/rss/",
        ARXIV_OAI_URL=server.url + "/oai",
        ARXIV_ARCHIVE_GROUPS=("cs", "stat"),
        ARXIV_RETRIES=1,
        ARXIV_BACKOFF=0.01,
        ARXIV_TIMEOUT=5.0,
        INGEST_COMPLETE_DEADLINE_HOURS=6,
    )
    return config


# Thursday: 2026-09-24 is due from its feed rebuild at 00:00 ET; the deadline
# for full feeds is 06:00 ET.
DUE_NOW = datetime(2026, 9, 24, 3, 0, tzinfo=ET)
AFTER_DEADLINE = datetime(2026, 9, 24, 6, 30, tzinfo=ET)
LATER = datetime(2026, 9, 24, 11, 0, tzinfo=ET)
ALL_DATE = "Thu, 28 Nov 2024 00:00:00 -0500"


def empty_due() -> bytes:
    """An empty feed dated the due date: what arXiv serves when a group's build failed."""
    return with_pub_date(fixture(EMPTY), ALL_DATE, COMBINED_DATE)


def full_due() -> bytes:
    """A full day (1,504 items) dated the due date."""
    return with_pub_date(ALL.read_bytes(), ALL_DATE, COMBINED_DATE)


def fetch_of(group: str, day: date = DUE) -> FeedFetch:
    db.session().expire_all()
    return db.session().scalar(
        select(FeedFetch).where(FeedFetch.archive_group == group, FeedFetch.listing_date == day)
    )


def completed_at(day: date = DUE) -> datetime | None:
    db.session().expire_all()
    row = db.session().get(ListingDay, day)
    return row.completed_at if row else None


def test_poll_stores_fresh_groups_and_waits_for_stale_ones(poll_config, server, app):
    stale = with_pub_date(fixture(EMPTY), ALL_DATE, "Wed, 23 Sep 2026 00:00:00 -0400")
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", Reply(body=stale))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert summary.listing_date == DUE
    assert not summary.complete
    assert summary.warnings == [
        "stat: stale feed, still dated 2026-09-23 (expected 2026-09-24); will retry"
    ]
    assert paper_count() == 4
    stat = fetch_of("stat")
    assert (stat.feed_date, stat.warning) == (date(2026, 9, 23), summary.warnings[0])
    assert completeness.uncovered_groups(DUE, settings().ARXIV_ARCHIVE_GROUPS) == ["stat"]

    # The next poll fetches only the stale group; it is fresh and full now, so the day completes.
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert summary.complete and summary.warnings == []
    assert [r.path for r in server.requests] == ["/rss/cs", "/rss/stat", "/rss/stat"]
    # Complete and every group covered: the poll after that sends nothing.
    assert ingest.ingest_due(settings(), DUE_NOW).note == "already complete; nothing to do"
    assert len(server.requests) == 3


def test_before_the_feed_rebuild_the_previous_day_is_due(poll_config, server, app):
    """At 21:00 ET the new batch is announced but feeds show the old one: nothing new is fetched."""
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))
    assert ingest.ingest_due(settings(), DUE_NOW).complete
    evening = datetime(2026, 9, 24, 21, 0, tzinfo=ET)
    assert ingest.ingest_due(settings(), evening).note == "already complete; nothing to do"
    assert len(server.requests) == 2


def test_empty_group_keeps_the_day_open_until_its_feed_is_full(poll_config, server, app):
    server.serve("/rss/cs", Reply(body=empty_due()))
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    warning = "cs: only 0 items, empty on an announcement day; waiting for a full feed"
    assert not summary.complete
    assert summary.warnings == [warning]
    assert completed_at() is None
    assert (fetch_of("cs").feed_date, fetch_of("cs").warning) == (DUE, warning)
    # No digest can go out for an incomplete day.
    result = run(app, "digest", "send", "--date", "2026-09-24")
    assert result.exit_code != 0 and "not completely ingested" in result.output

    # cs serves its full feed at the next poll: only cs is fetched again.
    server.serve("/rss/cs", Reply(body=full_due()))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert summary.complete and summary.warnings == []
    assert completed_at() is not None
    assert [r.path for r in server.requests] == ["/rss/cs", "/rss/stat", "/rss/cs"]
    all_ids = {i.arxiv_id for i in arxiv.parse_feed(ALL.read_bytes()).items}
    stored = dict(db.session().execute(select(Paper.arxiv_id, Paper.listing_date)).all())
    assert all_ids <= set(stored) and set(stored.values()) == {DUE}
    assert (fetches.total_items(fetch_of("cs")), fetch_of("cs").warning) == (1504, None)


def test_all_empty_weekday_stays_open_until_the_deadline(poll_config, server, app, caplog):
    server.serve("/rss/cs", Reply(body=empty_due()))
    server.serve("/rss/stat", Reply(body=empty_due()))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert not summary.complete
    assert [w.split(":")[0] for w in summary.warnings] == ["cs", "stat"]
    assert completed_at() is None
    assert ingest.ingest_due(settings(), datetime(2026, 9, 24, 5, 59, tzinfo=ET)).complete is False

    summary = ingest.ingest_due(settings(), AFTER_DEADLINE)
    assert summary.complete and completed_at() is not None
    assert paper_count() == 0
    noted = [
        r.getMessage() for r in caplog.records if "completed at the deadline" in r.getMessage()
    ]
    assert [
        r.levelname for r in caplog.records if "completed at the deadline" in r.getMessage()
    ] == [
        "WARNING",
        "WARNING",
    ]
    assert noted[0] == (
        "ingest 2026-09-24 completed at the deadline without a full feed from cs (0 items): "
        "cs: only 0 items, empty on an announcement day; waiting for a full feed; "
        f"{completeness.DEADLINE_NOTE}"
    )
    (day,) = fetches.recent_days()
    assert day.completed_at is not None
    assert [f.warning.endswith(completeness.DEADLINE_NOTE) for f in day.fetches] == [True, True]


def test_group_far_below_its_median_keeps_the_day_open(poll_config, server, app):
    add_history("cs", [300, 280, 350, 310, 290, 900, 305, 260, 330, 300])  # median 302.5
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))  # 4 items
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))  # no history: judged as not empty
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert not summary.complete
    assert summary.warnings == [
        "cs: only 4 items, under 20% of its median of 302.5 over its last 10 listing dates; "
        "waiting for a full feed"
    ]
    assert paper_count() == 4  # what it has is stored
    assert completeness.uncovered_groups(DUE, settings().ARXIV_ARCHIVE_GROUPS) == ["cs"]

    server.serve("/rss/cs", Reply(body=full_due()))
    assert ingest.ingest_due(settings(), DUE_NOW).complete


def test_after_the_deadline_the_day_completes_and_late_papers_are_stored(
    poll_config, server, app, caplog
):
    server.serve("/rss/cs", Reply(body=empty_due()))
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))
    assert not ingest.ingest_due(settings(), DUE_NOW).complete
    assert not ingest.ingest_due(settings(), datetime(2026, 9, 24, 5, 45, tzinfo=ET)).complete

    summary = ingest.ingest_due(settings(), AFTER_DEADLINE)
    assert summary.complete
    done = completed_at()
    warning = (
        "cs: only 0 items, empty on an announcement day; waiting for a full feed; "
        f"{completeness.DEADLINE_NOTE}"
    )
    assert fetch_of("cs").warning == warning
    assert warning in summary.warnings
    (logged,) = [r for r in caplog.records if "completed at the deadline" in r.getMessage()]
    assert logged.levelname == "WARNING" and "from cs (0 items)" in logged.getMessage()
    (day,) = fetches.recent_days()
    assert day.completed_at == done
    assert {f.archive_group: f.warning for f in day.fetches} == {"cs": warning, "stat": None}
    status = run(app, "status").output
    assert "2026-09-24 complete" in status
    assert f"warning: {warning}" in status

    # A complete day whose cs was short is still polled for cs, and nothing else.
    requests = len(server.requests)
    summary = ingest.ingest_due(settings(), LATER)
    assert summary.note is None and summary.complete
    assert [r.path for r in server.requests[requests:]] == ["/rss/cs"]
    assert fetch_of("cs").warning == warning  # still short, still noted

    # cs serves its full feed: its papers are stored under their own listing date, late.
    server.serve("/rss/cs", Reply(body=full_due()))
    summary = ingest.ingest_due(settings(), LATER)
    assert summary.late and summary.stored_new == 1504
    assert summary.line().endswith("the day was already complete: these arrive late")
    assert completed_at() == done  # completed once, at the deadline
    late = db.session().scalar(select(Paper).where(Paper.arxiv_id == "2411.17700"))
    assert late.listing_date == DUE and late.created_at > done
    assert fetch_of("cs").warning is None
    assert ingest.ingest_due(settings(), LATER).note == "already complete; nothing to do"

    # The next listing date is due: the 24th is not fetched again.
    server.serve("/rss/cs", Reply(body=empty_due()))
    friday = ingest.ingest_due(settings(), datetime(2026, 9, 25, 3, 0, tzinfo=ET))
    assert friday.listing_date == date(2026, 9, 25)
    assert fetch_of("cs").warning is None and fetches.total_items(fetch_of("cs")) == 1504


def test_poll_reads_atom_announcement_feeds(poll_config, server, app):
    replace_settings(app, ARXIV_RSS_URL=server.url + "/atom/")
    server.serve("/atom/cs", Reply(body=fixture(ATOM)))
    server.serve("/atom/stat", Reply(body=fixture(ATOM)))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert summary.complete and summary.warnings == []
    assert paper_count() == 4


STAT_FAULTS = [
    pytest.param(
        [Reply(400, fixture(ERROR))],
        {},
        "stat: Feed error for query: http://rss.arxiv.org/rss/astroph: Bad archive",
        id="error-channel",
    ),
    pytest.param(
        [Reply(200, fixture(COMBINED)[:5000])],
        {},
        "stat: malformed or truncated XML",
        id="truncated",
    ),
    pytest.param([Reply(503, b"down")], {}, "stat: http://127.0.0.1:", id="503"),
    pytest.param(
        [Reply(429, b"slow down", {"Retry-After": "3600"})],
        {},
        "stat: http://127.0.0.1:",
        id="429-retry-after-too-long",
    ),
    pytest.param(
        [Reply(200, fixture(COMBINED), delay=0.6)],
        {"ARXIV_TIMEOUT": 0.2},
        "stat: http://127.0.0.1:",
        id="timeout",
    ),
    pytest.param([Reply(200, b"<html>maintenance</html>")], {}, "stat: not an arXiv", id="html"),
    pytest.param(
        [
            Reply(
                200,
                with_pub_date(fixture(COMBINED), COMBINED_DATE, "Wed, 23 Sep 2026 00:00:00 -0400"),
            )
        ],
        {},
        "stat: stale feed, still dated 2026-09-23",
        id="stale",
    ),
    # The weekend's empty feed when the Thursday was expected: never a quiet day.
    pytest.param(
        [Reply(200, with_pub_date(fixture(EMPTY), "Thu, 28 Nov 2024", "Sat, 26 Sep 2026"))],
        {},
        "stat: feed is dated 2026-09-26, past the expected 2026-09-24",
        id="weekend-feed",
    ),
]


@pytest.mark.parametrize(("replies", "changes", "warning"), STAT_FAULTS)
def test_faults_keep_the_day_open_then_complete_it_at_the_deadline(
    poll_config, server, app, replies, changes, warning
):
    replace_settings(app, **changes)
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", *replies)
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert not summary.complete
    assert len(summary.warnings) == 1 and summary.warnings[0].startswith(warning)
    assert paper_count() == 4  # cs only
    assert fetch_of("stat").warning.startswith(warning)
    assert completeness.uncovered_groups(DUE, settings().ARXIV_ARCHIVE_GROUPS) == ["stat"]
    assert completed_at() is None

    # Still failing at the deadline: the day completes without stat, and says so.
    stat_requests = len(server.requests_to("/rss/stat"))
    summary = ingest.ingest_due(settings(), AFTER_DEADLINE)
    assert summary.complete and completed_at() is not None
    assert len(server.requests_to("/rss/stat")) > stat_requests  # retried at that poll
    assert fetch_of("stat").warning.startswith(warning)
    assert fetch_of("stat").warning.endswith(completeness.DEADLINE_NOTE)
    assert fetch_of("cs").warning is None


def test_with_no_feed_dated_the_day_the_deadline_does_not_complete_it(poll_config, server, app):
    """Every feed stale or failing: arXiv has not published the day for us; it waits for them."""
    stale = with_pub_date(fixture(COMBINED), COMBINED_DATE, "Wed, 23 Sep 2026 00:00:00 -0400")
    server.serve("/rss/cs", Reply(body=stale))
    server.serve("/rss/stat", Reply(503, b"down"))
    summary = ingest.ingest_due(settings(), AFTER_DEADLINE)
    assert not summary.complete and completed_at() is None
    assert completeness.uncovered_groups(DUE, settings().ARXIV_ARCHIVE_GROUPS) == ["cs", "stat"]
    assert completeness.DEADLINE_NOTE not in fetch_of("cs").warning

    # Once one feed is dated the day, even empty, the deadline completes it.
    server.serve("/rss/cs", Reply(body=empty_due()))
    assert ingest.ingest_due(settings(), AFTER_DEADLINE).complete


def test_429_with_retry_after_is_waited_for_and_its_answer_judged(poll_config, server, app):
    """arXiv's Retry-After is honoured within the poll; what comes after still has to be full."""
    slow_down = Reply(429, b"slow down", {"Retry-After": "1"})
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", slow_down, Reply(body=empty_due()))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    first, second = server.requests_to("/rss/stat")
    assert second.at - first.at >= 0.95
    assert not summary.complete
    assert summary.warnings == [
        "stat: only 0 items, empty on an announcement day; waiting for a full feed"
    ]

    server.serve("/rss/stat", slow_down, Reply(body=fixture(COMBINED)))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert summary.complete and summary.warnings == []
    assert len(server.requests_to("/rss/stat")) == 4


def test_a_failed_retry_keeps_a_short_groups_counts(poll_config, server, app):
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))
    add_history("cs", [300] * 10)
    ingest.ingest_due(settings(), DUE_NOW)
    short = fetch_of("cs").warning
    assert short.startswith("cs: only 4 items")
    server.serve("/rss/cs", Reply(503, b"down"))
    summary = ingest.ingest_due(settings(), DUE_NOW)
    assert summary.warnings[0].startswith("cs: http://127.0.0.1:")
    assert (fetch_of("cs").feed_date, fetch_of("cs").warning) == (DUE, short)
    assert fetches.total_items(fetch_of("cs")) == 4


# --- OAI-PMH backfill over real HTTP ---


BACKFILL_NOW = datetime(2026, 9, 25, 12, 0, tzinfo=ET)


def _oai_page(token: str | None, page: int = 1) -> bytes:
    """The recorded arXivRaw page with our own token, one record re-dated to a recent week.

    Page 1 re-dates 0704.0471 v1, page 2 0704.0716 v4; the other records keep
    their old dates and so fall outside the backfilled days.
    """
    data = fixture("oai_arXivRaw_ListRecords_resumptionToken_2015-01-06.xml")
    if page == 1:
        data = data.replace(b"Tue, 3 Apr 2007 22:04:11 GMT", b"Mon, 21 Sep 2026 12:00:00 GMT")
    else:
        data = data.replace(b"Fri, 14 Nov 2008 09:07:25 GMT", b"Tue, 22 Sep 2026 12:00:00 GMT")
    token_xml = f">{token}</resumptionToken>".encode() if token else b"></resumptionToken>"
    return data.replace(b">726959|1001</resumptionToken>", token_xml)


def test_backfill_follows_resumption_tokens(poll_config, server, app):
    poll_config  # noqa: B018
    replace_settings(app, ARXIV_ARCHIVE_GROUPS=("math+math-ph", "nucl-ex+nucl-th"))
    server.serve("/oai", Reply(body=_oai_page("page-2")), Reply(body=_oai_page(None, page=2)))
    summaries = backfill.ingest_oai(settings(), date(2026, 9, 22), date(2026, 9, 23), BACKFILL_NOW)
    lines = [s.line() for s in summaries]
    assert lines == [
        "2026-09-22: 1 items (1 new, 0 cross, 0 replace, 0 replace-cross); stored 1 new, 0 updated, 0 unchanged",
        "2026-09-23: 1 items (0 new, 0 cross, 1 replace, 0 replace-cross); stored 1 new, 0 updated, 0 unchanged",
    ]
    assert all(s.complete for s in summaries)
    assert paper("0704.0716").version == 4
    assert paper("0704.0471").announce_type is AnnounceType.NEW
    first, second = server.requests
    assert (
        first.query == "verb=ListRecords&metadataPrefix=arXivRaw&from=2026-09-19&until=2026-09-25"
    )
    assert second.query == "verb=ListRecords&resumptionToken=page-2"


def test_backfill_error_stores_nothing(poll_config, server, app):
    bad = b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><error code="badResumptionToken"/></OAI-PMH>'
    server.serve("/oai", Reply(body=_oai_page("page-2")), Reply(body=bad))
    with pytest.raises(FeedError, match="badResumptionToken"):
        backfill.ingest_oai(settings(), date(2026, 9, 22), date(2026, 9, 23), BACKFILL_NOW)
    assert paper_count() == 0
    assert db.session().scalar(select(func.count()).select_from(ListingDay)) == 0


# --- the CLI ---


def run(app, *args):
    return app.test_cli_runner().invoke(main, args=list(args))


def test_cli_ingest_file_twice(app):
    result = run(app, "ingest", "--file", str(ALL))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == SUMMARY_1504
    result = run(app, "ingest", "--file", str(ALL))
    assert result.output.strip() == (
        "2024-11-28: 1504 items (926 new, 9 cross, 569 replace, 0 replace-cross); "
        "stored 0 new, 0 updated, 1504 unchanged"
    )
    status = run(app, "status")
    assert status.exit_code == 0, status.output
    assert "2024-11-28 complete" in status.output
    assert "1504 items (926 new, 9 cross, 569 replace, 0 replace-cross)" in status.output
    assert "next expected:" in status.output


def test_cli_status_shows_warnings(poll_config, server, app):
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", Reply(400, fixture(ERROR)))
    ingest.ingest_due(settings(), DUE_NOW)
    output = run(app, "status").output
    assert "2026-09-24 INCOMPLETE" in output
    assert "warning: stat: Feed error for query" in output


@pytest.fixture
def hostile_files(tmp_path):
    binary = tmp_path / "binary.xml"
    binary.write_bytes(os.urandom(4096))
    huge = tmp_path / "huge.xml"
    with huge.open("wb") as f:
        f.truncate(arxiv.MAX_DOCUMENT_BYTES + 1)  # sparse: no real disk use
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(ALL.read_bytes()[:100_000])
    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><rss>&a;</rss>')
    return {"binary": binary, "huge": huge, "truncated": truncated, "bomb": bomb, "dir": tmp_path}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--file", "/nonexistent/feed.xml"], "no such file"),
        (["ingest", "--file", "{dir}"], "not a regular file"),
        (["ingest", "--file", "{binary}"], "malformed or truncated XML"),
        (["ingest", "--file", "{huge}"], "more than the"),
        (["ingest", "--file", "{truncated}"], "malformed or truncated XML"),
        (["ingest", "--file", "{bomb}"], "DTD"),
        (["ingest", "--file", str(ALL), "--date", "2024-11-30"], "not an arXiv listing date"),
        (["ingest", "--file", str(ALL), "--date", "28/11/2024"], "--date must be a date like"),
        (["ingest", "--date", "2024-02-30"], "--date must be a date like"),
        (["ingest", "--since", "tomorrow"], "--since must be a date like"),
        (["ingest", "--since", "2024-11-01", "--date", "2024-11-28"], "cannot be combined"),
        (["ingest", "--date", "2099-01-05"], "has not been announced yet"),
        (["ingest", "--date", "2001-01-05"], "backfill reaches back at most"),
        (
            [
                "ingest",
                "--file",
                str(DATA / EMPTY).replace(EMPTY, "api_legacy_search_cs-RO_2025-10-17.xml"),
            ],
            "give --date",
        ),
    ],
)
def test_cli_hostile_input(app, hostile_files, args, message):
    args = [a.format(**hostile_files) for a in args]
    result = run(app, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert paper_count() == 0
    assert db.session().scalar(select(func.count()).select_from(FeedFetch)) == 0
