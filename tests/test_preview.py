"""The keyword preview (newsletter/preview.py): the digest's own sections, per day,
on a real full day; the no-JavaScript Preview button stores nothing; the fragment
endpoint; errors, oversized input, the rate limit and the cache's invalidation."""

import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from arxiv_server import DATA
from conftest import empty_tables
from sqlalchemy import Table, func, select

from newsletter import db, preview, preview_index, ratelimit
from newsletter.config import settings
from newsletter.models import AnnounceType, Base, ListingDay, Paper, Subscriber
from worker.arxiv import ingest
from worker.digest.core import DayDigest, Reader

DAY = date(2024, 11, 28)
LINES = (
    "reinforcement learning",
    "large language model",
    "black hole",
    "graph neural network -survey",
    "cat:cs.RO",
    "grasping cat:cs.RO",
    "cat:hep-th string",
    '"neural network"',
    "transformer -vision",
    "au:Wang",
    'au:"Yang Liu"',
    "quantum error correction",
    "diffusion model cat:cs.CV",
    "dark matter -halo",
    "topological insulator",
    "zzzz unmatched phrase",
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    ratelimit.reset_local()


# The full day's rows as ingest stored them, per table, once per worker (store_full_day).
STORED_DAY: list[tuple[Table, list[dict]]] = []
# The preview's index of that day, shared by the tests' apps (store_full_day).
SHARED_DAYS = preview_index.DayCache()


def store_full_day(app) -> None:
    """The real full day (1,504 papers) in the app's empty database, its index shared.

    The worker's first call ingests the recorded feed; later calls insert the
    rows it stored (ids aside), which the next test gets in ~0.05 s instead of
    ingest's 0.4 s. With equal rows the day's cache key (completed_at, paper
    count, latest updated_at) is equal, so the apps share one index of it
    instead of each tokenizing the day's 1,504 papers again (0.7 s), as one
    web process does for all its requests. A test that changes the day
    changes that key, and the shared cache rebuilds (test_cache_follows_...).
    """
    with app.app_context():
        session = db.session()
        if not STORED_DAY:
            ingest.ingest_file(settings(), DATA / "rss_all-archives_2024-11-28.xml")
            for table in Base.metadata.sorted_tables:
                generated = table.autoincrement_column  # a new id in the next test's database
                rows = [
                    {k: v for k, v in row.items() if generated is None or k != generated.name}
                    for row in session.execute(table.select()).mappings()
                ]
                if rows:
                    STORED_DAY.append((table, rows))
        else:
            for table, rows in STORED_DAY:
                session.execute(table.insert(), rows)
            session.commit()
    app.extensions["preview_days"] = SHARED_DAYS


@pytest.fixture
def full_day(app):
    store_full_day(app)
    return app


def csrf_from(client, url: str = "/") -> str:
    return CSRF.search(client.get(url).get_data(as_text=True)).group(1)


def counts_of(html: str) -> list[str]:
    return re.findall(r"<li>(\w{3} \d+ \w{3}): <strong>(\d+)</strong></li>", html)


@pytest.mark.parametrize("replacements", [False, True])
def test_preview_equals_the_digest_sections_of_the_day(full_day, replacements):
    reader = Reader(LINES, "en", "UTC", replacements)
    days = preview.day_cache().days(db.session())
    assert [day.listing_date for day in days] == [DAY]
    # The digest core, on the whole day as dispatch loads it.
    digest = DayDigest.load(db.session(), settings(full_day), DAY)
    expected = dict(digest.sections({0: reader})[0])
    assert sum(len(ids) for ids in expected.values()) > 200  # the lines do match much

    shown = preview.preview_days(days, reader, settings(full_day))
    assert shown.dates == (DAY,)
    for item in shown.lines:
        ((listing_date, count),) = item.counts
        assert (listing_date, count) == (DAY, len(expected.get(item.line, [])))
        # Samples: the line's first papers as its own digest orders them (title
        # matches first); the reader's other lines do not reorder a line's preview.
        alone = replace(reader, keywords=(item.line,))
        wanted = [i for _k, ids in digest.sections({0: alone})[0] for i in ids][: preview.SAMPLES]
        assert [arxiv_id for arxiv_id, _ in item.samples] == wanted
    # Paper ids equal, in the digest's order: the sections on the candidates alone.
    (day,) = days
    queries = [preview_index.parse_keyword(line) for line in LINES]
    bits = preview_index._any(day.candidates(query) for query in queries)
    assert bits.bit_count() < len(day.ids)  # the index does narrow the day
    narrowed = DayDigest(DAY, day.papers_in(bits), settings(full_day))
    assert dict(narrowed.sections({0: reader})[0]) == expected


def test_preview_button_renders_the_form_again_and_stores_nothing(full_day, client, outbox):
    form = {
        "csrf_token": csrf_from(client),
        "email": "ada@example.org",
        "keywords": "reinforcement learning\nblack hole",
        "language": "en",
        "timezone": "Europe/Berlin",
        "delivery_hour": "7",
        "include_replacements": "on",
        "preview": "1",
    }
    response = client.post("/", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert db.session().scalar(select(func.count()).select_from(Subscriber)) == 0
    assert outbox.messages() == []
    # Every field as typed.
    assert 'value="ada@example.org"' in html
    assert "reinforcement learning\nblack hole</textarea>" in html
    assert 'value="Europe/Berlin"' in html
    assert '<option value="7" selected>' in html
    assert 'id="include_replacements" name="include_replacements" type="checkbox" checked' in html
    # The counts and the samples, linked to arXiv.
    expected = dict(
        DayDigest.load(db.session(), settings(full_day), DAY).sections(
            {0: Reader(("reinforcement learning", "black hole"), "en", "UTC", True)}
        )[0]
    )
    assert counts_of(html) == [
        ("Thu 28 Nov", str(len(expected["reinforcement learning"]))),
        ("Thu 28 Nov", str(len(expected["black hole"]))),
    ]
    first = expected["reinforcement learning"][0]
    assert f'href="https://arxiv.org/abs/{first}"' in html


def test_preview_checks_csrf(full_day, client):
    response = client.post("/", data={"keywords": "black hole", "preview": "1"})
    assert response.status_code == 400


def test_manage_preview_keeps_the_stored_lines(full_day, client):
    from newsletter.models import Keyword, SubscriberStatus
    from newsletter.tokens import make_token

    subscriber = Subscriber(
        email="ada@example.org",
        email_key="ada@example.org",
        status=SubscriberStatus.CONFIRMED,
        language="en",
        timezone="UTC",
    )
    subscriber.keywords.append(Keyword(position=0, text="black hole"))
    db.session().add(subscriber)
    db.session().commit()
    url = "/manage/" + make_token("test-secret-key", "manage", subscriber.public_id)
    response = client.post(
        url,
        data={"csrf_token": csrf_from(client, url), "keywords": "dark matter", "preview": "1"},
    )
    assert response.status_code == 200
    assert "<code>dark matter</code>" in response.get_data(as_text=True)
    db.session().expire_all()
    assert db.session().get(Subscriber, subscriber.id).keyword_lines == ["black hole"]


def script_html(response) -> str:
    """The fragment a /preview.js answer hands to window.keywordPreview."""
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    body = response.get_data(as_text=True)
    match = re.fullmatch(
        r"window\.keywordPreview && window\.keywordPreview\((\d+), (.*)\);\n", body
    )
    assert match, body[:200]
    assert "<" not in match.group(2)  # no "</script>" can end it early
    return json.loads(match.group(2))


def test_script_endpoint(full_day, client):
    response = client.get("/preview.js", query_string={"keywords": "black hole", "n": "7"})
    assert response.get_data(as_text=True).startswith(
        "window.keywordPreview && window.keywordPreview(7, "
    )
    html = script_html(response)
    assert "<html" not in html and "<code>black hole</code>" in html
    assert len(counts_of(html)) == 1
    # Nothing typed: nothing shown.
    assert script_html(client.get("/preview.js", query_string={"keywords": " \n "})) == ""
    # Any n that is not a small number is 0.
    response = client.get("/preview.js", query_string={"keywords": "x", "n": "1e9</script>"})
    assert "keywordPreview(0, " in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("keywords", "message", "previewed"),
    [
        ('black hole\nbroken "quote', "Line 2 (broken &#34;quote): A quote is not closed", 1),
        ("black hole\n" + "k" * 150, "Line 2 is longer than 100 characters.", 1),
        ("\n".join(f"line {n}" for n in range(25)), "At most 20 keyword lines", 0),
        ("word " * 2000, "Your keywords are too long", 0),
        ("-only", "not only exclusions", 0),
    ],
)
def test_bad_lines_get_the_form_errors(full_day, client, keywords, message, previewed):
    token = csrf_from(client)
    page = client.post("/", data={"csrf_token": token, "keywords": keywords, "preview": "1"})
    assert page.status_code == 400
    assert message in page.get_data(as_text=True)
    assert 'id="keywords-error"' in page.get_data(as_text=True)
    assert len(counts_of(page.get_data(as_text=True))) == previewed
    fragment = script_html(client.get("/preview.js", query_string={"keywords": keywords}))
    assert message in fragment
    assert len(counts_of(fragment)) == previewed


def test_nothing_stored_yet(app, client):
    response = client.get("/preview.js", query_string={"keywords": "x y"})
    assert "No listing date is stored yet" in script_html(response)


def test_rate_limited(config, database_url):
    from newsletter import create_app

    empty_tables(database_url)  # no listing date stored, whichever test ran before on this worker
    app = create_app({**config, "PREVIEW_LIMIT_PER_IP": 3})
    client = app.test_client()
    with app.app_context():
        form = {"csrf_token": csrf_from(client), "keywords": "black hole"}
        query = {"keywords": "black hole"}
        answers = [script_html(client.get("/preview.js", query_string=query)) for _ in range(2)]
        assert all("No listing date is stored yet" in html for html in answers)
        assert client.post("/", data={**form, "preview": "1"}).status_code == 200
        refused = script_html(client.get("/preview.js", query_string=query))
        assert "Too many previews" in refused and "No listing date" not in refused
        page = client.post("/", data={**form, "preview": "1"})
        assert page.status_code == 429 and "Too many previews" in page.get_data(as_text=True)
    app.extensions["db_engine"].dispose()


def add_paper(arxiv_id: str, title: str, listing_date: date, when: datetime) -> None:
    db.session().add(
        Paper(
            arxiv_id=arxiv_id,
            version=1,
            title=title,
            authors=["Ada Lovelace"],
            categories=["astro-ph.GA"],
            abstract="A study.",
            listing_date=listing_date,
            announce_type=AnnounceType.NEW,
            created_at=when,
            updated_at=when,
        )
    )


def test_cache_follows_late_papers_and_new_days(full_day):
    full_day.extensions["preview_days"] = preview_index.DayCache()  # its own: the day changes
    reader = Reader(("black hole",), "en", "UTC", False)

    def counts() -> tuple:
        days = preview.day_cache().days(db.session())
        return preview.preview_days(days, reader, settings(full_day)).lines[0].counts

    ((_, before),) = counts()
    cached = preview.day_cache()._days[DAY]
    assert counts() == ((DAY, before),) and preview.day_cache()._days[DAY] is cached

    # A late paper of the day (stored after it completed).
    completed = db.session().get(ListingDay, DAY).completed_at
    add_paper("2411.99991", "A black hole, late", DAY, completed + timedelta(hours=2))
    db.session().commit()
    assert counts() == ((DAY, before + 1),)

    # A new complete day comes first; six days keep the newest five.
    later = [date(2024, 12, 2), date(2024, 12, 3), date(2024, 12, 4), date(2024, 12, 5)]
    later.append(date(2024, 12, 6))
    for n, day in enumerate(later):
        db.session().add(ListingDay(listing_date=day, completed_at=completed + timedelta(days=5)))
        add_paper(f"2412.0000{n}", "Black holes again", day, completed + timedelta(days=4))
    db.session().commit()
    assert counts() == tuple((day, 1) for day in reversed(later))
    assert sorted(preview.day_cache()._days) == later


@pytest.mark.parametrize(
    "query",
    [
        "keywords=%00black",
        "keywords=%FF%FE",
        "keywords=a%0D%0Ab&keywords=c&include_replacements=yes",
        "keywords=" + "%E4%B8%AD" * 3000,
        "keywords=" + "a%0A" * 5000,
        "n=99999999999999999999&keywords=x",
    ],
)
def test_hostile_queries_are_answered(app, client, query):
    html = script_html(client.get("/preview.js?" + query))
    assert "Too many previews" not in html
