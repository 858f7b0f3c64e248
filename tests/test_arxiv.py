import json
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest
from arxiv_server import Reply, fixture

from newsletter import create_app, replace_settings
from newsletter.config import settings
from worker.arxiv import client as arxiv_client
from worker.arxiv import feeds as arxiv
from worker.arxiv.feeds import parse_feed
from worker.arxiv.items import FeedError, FetchError, split_authors

ALL = "rss_all-archives_2024-11-28.xml"
COMBINED = "rss_combined_cs.LG_cs.AI_cs.CL_stat.ML_2026-09-24.xml"
EMPTY = "rss_empty_feed_test-archive_2024-11-28.xml"
ERROR = "rss_error_feed_bad-archive.xml"
OAI = "oai_arXivRaw_ListRecords_resumptionToken_2015-01-06.xml"
ATOM_LEGACY = "api_legacy_search_cs-RO_2025-10-17.xml"
ATOM_FEED = "atom_combined_cs.LG_cs.AI_cs.CL_stat.ML_2026-09-24_constructed.xml"


def api_body(name: str) -> bytes:
    # Recorded inside a JSON wrapper; the body is the raw bytes decoded as latin-1.
    return json.loads(fixture(name))["body"].encode("latin-1")


# --- parsing recorded feeds ---


def test_full_day_of_all_archives():
    feed = parse_feed(fixture(ALL))
    assert feed.kind == "rss"
    assert feed.feed_date == date(2024, 11, 28)
    assert len(feed.archives) == 20 and "cs" in feed.archives and "q-fin" in feed.archives
    assert feed.skip_days == ["Saturday", "Sunday"]
    assert len(feed.items) == 1504
    assert Counter(i.announce_type for i in feed.items) == {"new": 926, "cross": 9, "replace": 569}
    assert len({i.arxiv_id for i in feed.items}) == 1504
    assert all(i.title and i.abstract and i.authors and i.categories for i in feed.items)
    assert sum(1 for i in feed.items if i.doi) == 111
    assert sum(1 for i in feed.items if i.journal_ref) == 97


def test_item_fields():
    items = {i.arxiv_id: i for i in parse_feed(fixture(ALL)).items}
    first = items["2411.17700"]
    assert first.version == 1
    assert first.title.startswith("Exploring the Impact of Generative AI on Cross-Border")
    assert first.abstract.startswith("This study investigates the influence")
    assert first.authors == ["Jun Cui"]
    assert first.categories == ["cs.CY"]
    assert first.announce_type == "new"
    # TeX stays as text; affiliations with commas stay with their author.
    berramdane = next(
        i for i in items.values() if i.authors[0].startswith("Mohammed Riadh Berramdane")
    )
    assert berramdane.authors[4] == "Benjamin R\\'emy (LEMTA)"
    assert len(berramdane.authors) == 6
    yan = next(i for i in items.values() if i.authors[0].startswith("Tianliang Yan"))
    assert (
        yan.authors[0]
        == "Tianliang Yan (University of Birmingham, School of Physics and Astronomy, Birmingham, United Kingdom)"
    )
    assert len(yan.authors) == 8
    with_ref = next(
        i
        for i in items.values()
        if i.journal_ref == "Physics of the Dark Universe, 47 (2025) 101730"
    )
    assert with_ref.arxiv_id


def test_combined_feed_keeps_primary_category_first_and_doi():
    feed = parse_feed(fixture(COMBINED))
    assert feed.feed_date == date(2026, 9, 24)
    assert feed.archives == ["cs.LG", "cs.AI", "cs.CL", "stat.ML"]
    cross = next(i for i in feed.items if i.announce_type == "cross")
    assert (cross.arxiv_id, cross.version) == ("2205.06398", 2)
    assert cross.categories == ["stat.ME", "stat.AP", "stat.ML"]
    assert cross.doi == "10.1093/bioinformatics/btac431"
    assert cross.authors == ["Pritam Dey", "Zhengwu Zhang", "David B. Dunson"]
    replaced = next(i for i in feed.items if i.announce_type == "replace")
    assert (replaced.arxiv_id, replaced.version) == ("2009.13987", 3)


def test_unicode_and_whitespace():
    data = fixture(COMBINED).replace(
        b"<title>Random Polytope Descriptors</title>",
        "<title>Random\n   Polytope   Descriptors: Schr\u00f6dinger $\\alpha$-\u5b9a\u7406</title>".encode(),
    )
    item = next(i for i in parse_feed(data).items if i.arxiv_id == "2009.13987")
    assert item.title == "Random Polytope Descriptors: Schr\u00f6dinger $\\alpha$-\u5b9a\u7406"


def test_empty_feed_is_a_day_without_items():
    feed = parse_feed(fixture(EMPTY))
    assert (feed.feed_date, feed.items, feed.archives) == (date(2024, 11, 28), [], ["test"])


def test_error_channel_is_an_error():
    with pytest.raises(FeedError, match="Bad archive 'astroph'"):
        parse_feed(fixture(ERROR))


def test_atom_api_responses():
    legacy = parse_feed(fixture(ATOM_LEGACY))
    assert legacy.kind == "atom" and legacy.feed_date is None
    first = legacy.items[0]
    assert (first.arxiv_id, first.version, first.announce_type) == ("2510.14968", 1, "new")
    assert (
        first.title
        == "RDD: Retrieval-Based Demonstration Decomposer for Planner Alignment in Long-Horizon Tasks"
    )
    assert first.categories == ["cs.RO", "cs.AI", "cs.CV", "cs.LG", "cs.SY", "eess.SY"]
    assert first.comments.startswith(
        "39th Conference on Neural Information Processing Systems (NeurIPS 2025)"
    )
    assert first.version_dates == ((1, datetime(2025, 10, 16, 17, 59, 37, tzinfo=UTC)),)
    current = parse_feed(api_body("api_2026_search_all-testing_10-results.json"))
    assert len(current.items) == 10
    assert current.items[0].doi == "10.1109/ICSTW55395.2022.00035"
    assert current.items[0].categories[0] == "cs.SE"
    assert any("\u00ed" in a for i in current.items for a in i.authors)  # "Ramírez", no mojibake
    assert parse_feed(api_body("api_2026_empty_zero-results.json")).items == []
    with pytest.raises(FeedError, match="incorrect id format for abc"):
        parse_feed(api_body("api_2026_error_http400_bad-id.json"))


def test_atom_announcement_feed_is_its_rss_twin():
    atom = parse_feed(fixture(ATOM_FEED))
    rss = parse_feed(fixture(COMBINED))
    assert (atom.kind, atom.feed_date, atom.archives) == (
        "atom-announce",
        date(2026, 9, 24),
        ["cs.LG", "cs.AI", "cs.CL", "stat.ML"],
    )
    assert atom.is_announcement and rss.is_announcement
    assert atom.items == rss.items
    cross = next(i for i in atom.items if i.announce_type == "cross")
    assert (cross.arxiv_id, cross.version, cross.doi) == (
        "2205.06398",
        2,
        "10.1093/bioinformatics/btac431",
    )
    # The search API's Atom is still the search API's: dated per entry, not a listing.
    api = parse_feed(fixture(ATOM_LEGACY))
    assert (api.kind, api.feed_date, api.is_announcement) == ("atom", None, False)
    # An empty search result has no entries to tell by; its links say export.arxiv.org/api.
    assert parse_feed(api_body("api_2026_empty_zero-results.json")).kind == "atom"


def _without_entries(data: bytes) -> bytes:
    head, _, _ = data.partition(b"<entry>")
    return head + b"</feed>\n"


def test_empty_atom_announcement_feed_is_dated_by_its_build_in_new_york():
    # Built at 23:30 ET on the 24th, which is already the 25th in UTC.
    data = _without_entries(fixture(ATOM_FEED)).replace(
        b"<updated>2026-09-24T08:58:05+00:00</updated>",
        b"<updated>2026-09-25T03:30:00+00:00</updated>",
    )
    feed = parse_feed(data)
    assert (feed.kind, feed.feed_date, feed.items) == ("atom-announce", date(2026, 9, 24), [])
    assert feed.archives == ["cs.LG", "cs.AI", "cs.CL", "stat.ML"]


def test_atom_announcement_entries_of_two_dates_are_refused():
    data = fixture(ATOM_FEED).replace(
        b"<published>2026-09-24T00:00:00-04:00</published>",
        b"<published>2026-09-23T00:00:00-04:00</published>",
        1,
    )
    with pytest.raises(FeedError, match="2026-09-23, 2026-09-24: not one listing date"):
        parse_feed(data)


def test_oai_arxivraw_page():
    page = parse_feed(fixture(OAI))
    assert page.kind == "oai"
    assert page.resumption_token == "726959|1001"
    assert len(page.items) == 6
    first = page.items[0]
    assert first.authors == ["D.V. Shetty", "S.J. Yennello", "G.A. Souliotis"]
    assert first.categories == ["nucl-ex", "nucl-th"]
    assert first.doi == "10.1103/PhysRevC.76.024606 10.1103/PhysRevC.76.039902"
    assert first.title.endswith("state: A Dynamical and Statistical model perspective")
    richard = page.items[1]
    assert richard.version == 4
    assert [v for v, _ in richard.version_dates] == [1, 2, 3, 4]
    assert richard.version_dates[-1][1] == datetime(2008, 11, 14, 9, 7, 25, tzinfo=UTC)
    assert richard.journal_ref.startswith("Polygons, polyominoes and polycubes")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            b'<error code="badResumptionToken">expired</error></OAI-PMH>',
            "badResumptionToken",
        ),
        (
            b'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            b"<responseDate>2025-01-01T00:00:00Z</responseDate></OAI-PMH>",
            "without <ListRecords>",
        ),
    ],
)
def test_oai_errors(body, message):
    with pytest.raises(FeedError, match=message):
        parse_feed(body)


def test_oai_no_records_is_an_empty_page():
    body = (
        b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        b'<error code="noRecordsMatch">none</error></OAI-PMH>'
    )
    assert parse_feed(body).items == []


@pytest.mark.parametrize(
    ("raw", "authors"),
    [
        ("Jun Cui", ["Jun Cui"]),
        ("A. Author, B. Author", ["A. Author", "B. Author"]),
        ("A. Author and B. Author", ["A. Author", "B. Author"]),
        ("A. Author, B. Author, and C. Author", ["A. Author", "B. Author", "C. Author"]),
        ("A. Author (U. X, Dept. Y), B. Author", ["A. Author (U. X, Dept. Y)", "B. Author"]),
        (
            "A. Author (Andrew and Peggy Cherng Dept., Caltech) and B. Author",
            ["A. Author (Andrew and Peggy Cherng Dept., Caltech)", "B. Author"],
        ),
        ("Krishna Shende, Kavita Dorai,  Arvind", ["Krishna Shende", "Kavita Dorai", "Arvind"]),
        ("John Smith, Jr., Jane Doe", ["John Smith, Jr.", "Jane Doe"]),
        ("  Zo\u00eb  Gr\u00fcn ,\n  \u674e\u534e ", ["Zo\u00eb Gr\u00fcn", "\u674e\u534e"]),
        ("", []),
    ],
)
def test_split_authors(raw, authors):
    assert split_authors(raw) == authors


HOSTILE = [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe", "malformed"),
    (b"<html><body>Service unavailable</body></html>", "not an arXiv"),
    (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<rss><channel><title>&lol2;</title></channel></rss>",
        "DTD",
    ),
    (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><title>&xxe;</title></channel></rss>",
        "DTD",
    ),
    (b'<!DOCTYPE rss SYSTEM "http://127.0.0.1:9/rss.dtd"><rss/>', "DTD"),
    (
        b'<?xml version="1.0"?><rss><channel><title>x</title><item><title>t</title>'
        b"<guid>no id here</guid></item></channel></rss>",
        "no arXiv id",
    ),
    (
        b'<?xml version="1.0"?><rss><channel><pubDate>yesterday-ish</pubDate></channel></rss>',
        "bad pubDate",
    ),
    (b'<rss version="2.0"/>', "without a <channel>"),
]


@pytest.mark.parametrize(("body", "message"), HOSTILE)
def test_hostile_documents(body, message):
    with pytest.raises(FeedError, match=message):
        parse_feed(body)


def test_truncated_feed_is_an_error():
    data = fixture(ALL)
    with pytest.raises(FeedError, match="malformed or truncated"):
        parse_feed(data[: len(data) // 2])


def test_oversized_document_is_refused():
    with pytest.raises(FeedError, match="more than"):
        parse_feed(b" " * (arxiv.MAX_DOCUMENT_BYTES + 1))


# --- fetching over real HTTP ---


@pytest.fixture
def fetch_config(config, server):
    config.update(
        ARXIV_RSS_URL=server.url + "/rss/",
        ARXIV_OAI_URL=server.url + "/oai",
        ARXIV_RETRIES=3,
        ARXIV_BACKOFF=0.01,
        ARXIV_TIMEOUT=5.0,
        ARXIV_MIN_INTERVAL=0.0,
    )
    return config


def test_fetch_feed_sends_user_agent(fetch_config, server, app):
    server.serve("/rss/cs", Reply(body=fixture(COMBINED)))
    assert arxiv_client.fetch_feed(settings(), "cs") == fixture(COMBINED)
    (request,) = server.requests
    assert "tests@digest.test" in request.headers["User-Agent"]
    assert "arxiv-digest" in request.headers["User-Agent"]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_statuses_are_retried(fetch_config, server, app, status):
    server.serve(
        "/rss/cs", Reply(status, b"busy"), Reply(status, b"busy"), Reply(body=fixture(COMBINED))
    )
    assert parse_feed(arxiv_client.fetch_feed(settings(), "cs")).feed_date == date(2026, 9, 24)
    assert len(server.requests) == 3


def test_each_failed_attempt_is_one_line(fetch_config, server, app, caplog):
    server.serve("/rss/cs", Reply(503, b"busy"), Reply(502, b"busy"), Reply(body=fixture(EMPTY)))
    with caplog.at_level("WARNING", logger="worker.arxiv.client"):
        arxiv_client.fetch_feed(settings(), "cs")
    lines = [r.getMessage() for r in caplog.records if r.name == "worker.arxiv.client"]
    assert len(lines) == 2
    assert "HTTP 503 (attempt 1/4); retrying in" in lines[0]
    assert "HTTP 502 (attempt 2/4); retrying in" in lines[1]


def test_a_retry_waits_for_the_rate_limit(fetch_config, server, app):
    """The backoff (10 ms here) is shorter than the limit: the retry still waits its turn."""
    replace_settings(app, ARXIV_MIN_INTERVAL=0.5)
    server.serve("/rss/cs", Reply(503, b"busy"), Reply(body=fixture(EMPTY)))
    asked = time.monotonic()
    arxiv_client.fetch_feed(settings(), "cs")
    first, second = server.requests
    # A turn after the first attempt's, which came no sooner than asked (measured from
    # asking, not from the first arrival, which a loaded machine may delay; 1 us: rounding).
    assert second.at - asked >= 0.5 - 1e-6


def test_retries_run_out(fetch_config, server, app):
    server.serve("/rss/cs", Reply(503, b"down"))
    with pytest.raises(FetchError, match="HTTP 503, giving up after 4 attempts"):
        arxiv_client.fetch_feed(settings(), "cs")
    assert len(server.requests) == 4


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_retry_after_is_honoured(fetch_config, server, app, form):
    named = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)  # whole seconds
    value = "1" if form == "seconds" else format_datetime(named, usegmt=True)
    server.serve(
        "/rss/cs", Reply(429, b"slow down", {"Retry-After": value}), Reply(body=fixture(EMPTY))
    )
    arxiv_client.fetch_feed(settings(), "cs")
    first, second = server.requests
    if form == "seconds":
        assert second.at - first.at >= 0.95  # the wait starts after the 429 arrived
    else:
        # Not before the instant named (1 ms: reading the two clocks one after the other).
        named_at = time.monotonic() - (time.time() - named.timestamp())
        assert second.at >= named_at - 0.001


def test_retry_after_too_long_gives_up_at_once(fetch_config, server, app):
    server.serve("/rss/cs", Reply(429, b"", {"Retry-After": "3600"}), Reply(body=fixture(EMPTY)))
    with pytest.raises(FetchError, match="asks to wait 3600 s"):
        arxiv_client.fetch_feed(settings(), "cs")
    assert len(server.requests) == 1


def test_timeouts_are_retried(fetch_config, server, app):
    replace_settings(app, ARXIV_TIMEOUT=0.3)
    server.serve("/rss/cs", Reply(body=fixture(EMPTY), delay=1.0), Reply(body=fixture(EMPTY)))
    assert parse_feed(arxiv_client.fetch_feed(settings(), "cs")).items == []
    assert len(server.requests) == 2


def test_timeouts_run_out(fetch_config, server, app):
    replace_settings(app, ARXIV_TIMEOUT=0.2, ARXIV_RETRIES=1)
    server.serve("/rss/cs", Reply(body=fixture(EMPTY), delay=0.6))
    with pytest.raises(FetchError, match="ReadTimeout, giving up after 2 attempts"):
        arxiv_client.fetch_feed(settings(), "cs")


def test_connection_refused_is_a_fetch_error(fetch_config, app):
    replace_settings(app, ARXIV_RSS_URL="http://127.0.0.1:9/rss/", ARXIV_RETRIES=1)
    with pytest.raises(FetchError, match="ConnectionError"):
        arxiv_client.fetch_feed(settings(), "cs")


def test_error_channel_with_http_400_is_an_error_not_retried(fetch_config, server, app):
    server.serve("/rss/astroph", Reply(400, fixture(ERROR)))
    with pytest.raises(FeedError, match="Bad archive 'astroph'"):
        arxiv_client.fetch_feed(settings(), "astroph")
    assert len(server.requests) == 1


def test_http_400_without_a_body_is_an_error(fetch_config, server, app):
    server.serve("/oai", Reply(400, b"<html>bad request</html>"))
    with pytest.raises(FeedError):
        arxiv_client.fetch_oai_page(
            settings(), from_date=date(2025, 1, 1), until_date=date(2025, 1, 2)
        )


def test_other_client_errors_are_not_retried(fetch_config, server, app):
    server.serve("/rss/cs", Reply(404, b"gone"))
    with pytest.raises(FetchError, match="HTTP 404"):
        arxiv_client.fetch_feed(settings(), "cs")
    assert len(server.requests) == 1


def test_oai_page_parameters(fetch_config, server, app):
    server.serve("/oai", Reply(body=fixture(OAI)))
    arxiv_client.fetch_oai_page(settings(), from_date=date(2025, 1, 1), until_date=date(2025, 1, 3))
    arxiv_client.fetch_oai_page(settings(), resumption_token="726959|1001")
    first, second = server.requests
    assert (
        first.query == "verb=ListRecords&metadataPrefix=arXivRaw&from=2025-01-01&until=2025-01-03"
    )
    assert second.query == "verb=ListRecords&resumptionToken=726959%7C1001"


def test_rate_limit_in_process(fetch_config, server, app):
    replace_settings(app, ARXIV_MIN_INTERVAL=0.3)
    server.serve("/rss/cs", Reply(body=fixture(EMPTY)))
    asked = []
    for _ in range(3):
        asked.append(time.monotonic())
        arxiv_client.fetch_feed(settings(), "cs")
    arrived = [r.at for r in server.requests]
    # The gate spaces its turns: the j-th request arrives no sooner than j - i intervals
    # after the i-th was asked for. (The arrivals' own gaps also carry each request's
    # way to the server, which a loaded machine stretches for one and not the next.)
    # 1 us: float rounding of the monotonic clock's sums.
    assert all(
        arrived[j] - asked[i] >= (j - i) * 0.3 - 1e-6 for i in range(3) for j in range(i + 1, 3)
    )


def test_rate_limit_is_shared_through_redis(fetch_config, server, redis_url):
    """Two apps (as two worker processes would) share one limit through Redis."""
    fetch_config.update(ARXIV_MIN_INTERVAL=0.4, REDIS_URL=redis_url)
    server.serve("/rss/cs", Reply(body=fixture(EMPTY)))
    errors = []

    def worker(app) -> None:
        try:
            with app.app_context():
                for _ in range(2):
                    arxiv_client.fetch_feed(settings(), "cs")
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            app.extensions["db_engine"].dispose()
            if "redis" in app.extensions:
                app.extensions["redis"].close()

    # The apps are made here, one after the other: two threads building
    # werkzeug's URL rules at once (`ast.parse`) can fail on CPython 3.11 with
    # "SystemError: AST constructor recursion depth mismatch" (python/cpython
    # gh-106905; seen here in CI). What runs at once is the fetching.
    apps = [create_app(dict(fetch_config)) for _ in range(2)]
    threads = [threading.Thread(target=worker, args=(app,)) for app in apps]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    times = sorted(r.at for r in server.requests)
    assert len(times) == 4
    # The n-th request (from 0) arrives no sooner than n intervals after the start, as
    # Redis counts them: its key's expiry, in whole milliseconds on its own clock.
    assert all(at - start >= n * 0.4 - 0.005 for n, at in enumerate(times))
