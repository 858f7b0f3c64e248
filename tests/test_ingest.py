import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from arxiv_server import DATA, Reply, fixture, with_pub_date
from sqlalchemy import func, select

from newsletter import db
from newsletter.cli import main
from newsletter.models import AnnounceType, FeedFetch, ListingDay, Paper
from worker import arxiv, backfill, ingest

ET = ZoneInfo("America/New_York")
ALL = DATA / "rss_all-archives_2024-11-28.xml"
COMBINED = "rss_combined_cs.LG_cs.AI_cs.CL_stat.ML_2026-09-24.xml"
EMPTY = "rss_empty_feed_test-archive_2024-11-28.xml"
ERROR = "rss_error_feed_bad-archive.xml"
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
    (summary,) = ingest.ingest_file(ALL)
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

    (again,) = ingest.ingest_file(ALL)
    assert (again.stored_new, again.updated, again.unchanged) == (0, 0, 1504)
    assert paper_count() == 1504
    db.session().expire_all()
    assert paper("2411.17700").updated_at == first_updated
    assert session.get(ListingDay, date(2024, 11, 28)).completed_at == day.completed_at


def test_newer_version_updates_and_older_is_ignored(app, tmp_path):
    ingest.ingest_file(DATA / COMBINED)
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
    (summary,) = ingest.ingest_file(tmp_path / "later.xml")
    assert (summary.stored_new, summary.updated, summary.unchanged) == (0, 1, 3)
    row = paper("2009.13987")
    assert (row.version, row.title, row.listing_date) == (
        4,
        "Random Polytope Descriptors, revised",
        date(2026, 9, 25),
    )
    # The older day's file again: v3 does not overwrite v4.
    (summary,) = ingest.ingest_file(DATA / COMBINED)
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
    ingest.ingest_file(tmp_path / "cross.xml")
    assert paper("2205.06398").announce_type is AnnounceType.CROSS
    (summary,) = ingest.ingest_file(tmp_path / "new.xml")
    assert summary.updated == 1
    assert paper("2205.06398").announce_type is AnnounceType.NEW
    ingest.ingest_file(tmp_path / "cross.xml")  # the weaker type again changes nothing
    assert paper("2205.06398").announce_type is AnnounceType.NEW


def test_partial_feed_does_not_complete_the_day(app):
    (summary,) = ingest.ingest_file(DATA / COMBINED)
    assert not summary.complete
    assert db.session().get(ListingDay, date(2026, 9, 24)).completed_at is None


def test_file_with_explicit_date(app):
    (summary,) = ingest.ingest_file(
        DATA / "api_legacy_search_cs-RO_2025-10-17.xml", date(2025, 10, 17)
    )
    assert summary.counts == {"new": 2}
    assert paper("2510.14968").listing_date == date(2025, 10, 17)
    assert not summary.complete  # an API search result is never a whole day


def test_low_count_is_a_warning(app):
    session = db.session()
    group = "cs.LG+cs.AI+cs.CL+stat.ML"
    for day in (date(2026, 9, 21), date(2026, 9, 22), date(2026, 9, 23)):
        session.add(
            FeedFetch(
                listing_date=day, archive_group=group, source="rss", feed_date=day, count_new=300
            )
        )
    session.commit()
    (summary,) = ingest.ingest_file(DATA / COMBINED)
    assert summary.warnings == [f"{group}: only 4 items, far below the recent average of 300"]
    fetch = session.scalar(select(FeedFetch).where(FeedFetch.listing_date == date(2026, 9, 24)))
    assert fetch.warning == summary.warnings[0]


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
    )
    return config


DUE_NOW = datetime(2026, 9, 24, 9, 0, tzinfo=ET)  # Thursday morning: 2026-09-24 is due


def test_poll_stores_fresh_groups_and_waits_for_stale_ones(poll_config, server, app):
    stale = with_pub_date(
        fixture(EMPTY), "Thu, 28 Nov 2024 00:00:00 -0500", "Wed, 23 Sep 2026 00:00:00 -0400"
    )
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", Reply(body=stale))
    summary = ingest.ingest_due(DUE_NOW)
    assert summary.listing_date == date(2026, 9, 24)
    assert not summary.complete
    assert summary.warnings == [
        "stat: stale feed, still dated 2026-09-23 (expected 2026-09-24); will retry"
    ]
    assert paper_count() == 4
    stat = db.session().scalar(select(FeedFetch).where(FeedFetch.archive_group == "stat"))
    assert (stat.feed_date, stat.warning) == (date(2026, 9, 23), summary.warnings[0])

    # The next poll fetches only the stale group; it is fresh now, so the day completes.
    server.serve("/rss/stat", Reply(body=with_pub_date(stale, "Wed, 23 Sep", "Thu, 24 Sep")))
    summary = ingest.ingest_due(DUE_NOW)
    assert summary.complete and summary.warnings == []
    assert [r.path for r in server.requests] == ["/rss/cs", "/rss/stat", "/rss/stat"]
    # Complete: the poll after that sends nothing.
    assert ingest.ingest_due(DUE_NOW).note == "already complete; nothing to do"
    assert len(server.requests) == 3


def test_before_the_feed_rebuild_the_previous_day_is_due(poll_config, server, app):
    """At 21:00 ET the new batch is announced but feeds show the old one: nothing new is fetched."""
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", Reply(body=fixture(COMBINED)))
    assert ingest.ingest_due(DUE_NOW).complete
    evening = datetime(2026, 9, 24, 21, 0, tzinfo=ET)
    assert ingest.ingest_due(evening).note == "already complete; nothing to do"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("reply", "warning"),
    [
        (
            Reply(400, fixture(ERROR)),
            "stat: Feed error for query: http://rss.arxiv.org/rss/astroph: Bad archive",
        ),
        (Reply(200, fixture(COMBINED)[:5000]), "stat: malformed or truncated XML"),
        (Reply(503, b"down"), "stat: "),
        (Reply(200, b"<html>maintenance</html>"), "stat: not an arXiv"),
        # The weekend's empty feed when the Thursday was expected: never a quiet day.
        (
            Reply(200, with_pub_date(fixture(EMPTY), "Thu, 28 Nov 2024", "Sat, 26 Sep 2026")),
            "stat: feed is dated 2026-09-26, past the expected 2026-09-24",
        ),
    ],
)
def test_faults_store_nothing_for_the_group(poll_config, server, app, reply, warning):
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    server.serve("/rss/stat", reply)
    summary = ingest.ingest_due(DUE_NOW)
    assert not summary.complete
    assert len(summary.warnings) == 1 and summary.warnings[0].startswith(warning)
    assert paper_count() == 4  # cs only
    stat = db.session().scalar(select(FeedFetch).where(FeedFetch.archive_group == "stat"))
    assert stat.warning.startswith(warning)
    assert db.session().get(ListingDay, date(2026, 9, 24)).completed_at is None


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
    app.config["ARXIV_ARCHIVE_GROUPS"] = ("math+math-ph", "nucl-ex+nucl-th")
    server.serve("/oai", Reply(body=_oai_page("page-2")), Reply(body=_oai_page(None, page=2)))
    summaries = backfill.ingest_oai(date(2026, 9, 22), date(2026, 9, 23), BACKFILL_NOW)
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
    with pytest.raises(arxiv.FeedError, match="badResumptionToken"):
        backfill.ingest_oai(date(2026, 9, 22), date(2026, 9, 23), BACKFILL_NOW)
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
    ingest.ingest_due(DUE_NOW)
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
