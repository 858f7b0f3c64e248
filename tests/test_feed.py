"""newsletter/feed.py: the personal Atom feed, through the Flask test client.

Parsed with a real feed parser (feedparser) and with xml.etree for the exact
namespace; what it lists is checked against the digest core's sections of each day.
"""

import re
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from xml.etree import ElementTree as ET

import feedparser
import pytest
from sqlalchemy import select, update

from newsletter import db, feed_cache
from newsletter.config import settings
from newsletter.models import (
    AnnounceType,
    Keyword,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import feed_url, make_token, subscriber_links
from worker import calendar
from worker.demo.load import DEMO_LISTING_DATE, load_demo
from worker.digest.core import DayDigest, Reader
from worker.digest.entries import readable

ATOM = "{http://www.w3.org/2005/Atom}"
RL, DP = "reinforcement learning", "diffusion policy"
# The two listing dates before the demo's Friday 29 May 2026, and the one after.
THU, WED, MON = date(2026, 5, 28), date(2026, 5, 27), date(2026, 6, 1)
SHARED = "2605.30056"  # a demo paper both demo lines match


@pytest.fixture(autouse=True)
def fresh_caches():
    # Every test empties the same database: a day's counts read by the last
    # test would be reused for DAYS_TTL, and its sections keyed by them.
    feed_cache.clear_caches()


def add_subscriber(email: str, keywords: list[str], **fields) -> Subscriber:
    subscriber = Subscriber(
        email=email,
        email_key=email.casefold(),
        status=fields.pop("status", SubscriberStatus.CONFIRMED),
        keywords=[Keyword(position=i, text=text) for i, text in enumerate(keywords)],
        **fields,
    )
    db.session().add(subscriber)
    return subscriber


def add_paper(arxiv_id: str, listing_date: date, title: str, **fields) -> Paper:
    paper = Paper(
        arxiv_id=arxiv_id,
        version=fields.pop("version", 1),
        title=title,
        authors=["Ada Lovelace", "Alan Turing"],
        categories=["cs.LG"],
        abstract=fields.pop("abstract", f"We study {title.lower()}."),
        listing_date=listing_date,
        announce_type=fields.pop("announce_type", AnnounceType.NEW),
        **fields,
    )
    db.session().add(paper)
    return paper


def complete_day(listing_date: date, at: datetime | None = None) -> ListingDay:
    day = ListingDay(listing_date=listing_date, completed_at=at or db.utcnow())
    db.session().add(day)
    return day


def path(app, subscriber: Subscriber) -> str:
    return feed_url(settings(app), subscriber.public_id).removeprefix(settings(app).BASE_URL)


def parse(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.get_data())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def arxiv_id(entry) -> str:
    return entry.link.removeprefix("https://arxiv.org/abs/")


def core_ids(app, subscriber: Subscriber, listing_date: date) -> set[str]:
    """What the digest core puts in this subscriber's email of that day."""
    day = DayDigest.load(db.session(), settings(app), listing_date)
    sections = day.sections({0: Reader.of(subscriber)})[0]
    return {i for _, ids in sections for i in ids}


@pytest.fixture
def demo(app):
    session = db.session()
    load_demo(session)
    reader = add_subscriber("reader@example.org", [RL, DP])
    session.commit()
    return reader


def test_the_feed_is_valid_atom_with_one_entry_per_paper_and_its_lines(app, client, demo):
    url = path(app, demo)
    response = client.get(url)
    parsed = parse(response)
    expected = core_ids(app, demo, DEMO_LISTING_DATE)
    ids = [arxiv_id(entry) for entry in parsed.entries]
    assert len(ids) == len(set(ids)) == len(expected) == 66
    assert set(ids) == expected
    by_id = {arxiv_id(entry): entry for entry in parsed.entries}
    # The paper both lines match is one entry with both lines as categories.
    assert sorted(tag.term for tag in by_id[SHARED].tags) == [DP, RL]
    assert [tag.term for tag in by_id["2605.29002"].tags] == [RL]
    paper = db.session().scalar(select(Paper).where(Paper.arxiv_id == SHARED))
    entry = by_id[SHARED]
    assert entry.title == readable(paper.title)
    assert entry.summary == readable(paper.abstract)
    # TeX as the email's text part shows it.
    tex = by_id["2605.30190"].summary
    assert "scales as O(H²/√N) while" in tex and "$" not in tex
    assert [a.name for a in entry.authors] == paper.authors
    assert {link.rel: link.href for link in entry.links} == {
        "alternate": f"https://arxiv.org/abs/{SHARED}",
        "related": f"https://arxiv.org/pdf/{SHARED}",
    }
    announced = calendar.announcement_instant(DEMO_LISTING_DATE).astimezone(UTC)
    assert entry.updated == announced.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert entry.id == f"tag:digest.test,2026:arxiv:{SHARED}v{paper.version}"
    assert parsed.feed.id == f"tag:digest.test,2026:feed:{demo.public_id}"
    assert parsed.feed.links[0].rel == "self"
    assert parsed.feed.links[0].href == "http://digest.test" + url

    root = ET.fromstring(response.get_data())
    assert root.tag == f"{ATOM}feed"
    assert len(root.findall(f"{ATOM}entry")) == 66
    shared = next(
        e for e in root.iter(f"{ATOM}entry") if e.findtext(f"{ATOM}id").endswith(SHARED + "v1")
    )
    assert [c.get("term") for c in shared.findall(f"{ATOM}category")] == [RL, DP]
    assert shared.find(f"{ATOM}summary").get("type") == "text"
    assert response.get_data().startswith(b'<?xml version="1.0" encoding="utf-8"?>')


def test_each_days_entries_are_the_digest_cores_sections_of_that_day(app, client):
    """Over several days, with replacements, a late paper and an incomplete day."""
    session = db.session()
    load_demo(session)
    plain = add_subscriber("plain@example.org", [RL, "graph neural network"])
    both = add_subscriber("both@example.org", [RL], include_replacements=True)
    # An author line: the only kind for which the feed reads the authors to match.
    author = add_subscriber("author@example.org", ["au:Turing graph", "au:Lovelace reinforcement"])
    complete_day(WED, datetime(2026, 5, 27, 6, tzinfo=UTC))
    complete_day(THU, datetime(2026, 5, 28, 6, tzinfo=UTC))
    add_paper("2605.20001", WED, "Graph neural networks for molecules")
    add_paper("2605.20002", WED, "Offline reinforcement learning, revisited")
    add_paper("2605.20003", WED, "Unrelated topology")
    add_paper(
        "2605.10004", THU, "Reinforcement learning at scale", announce_type=AnnounceType.REPLACE
    )
    add_paper("2605.20005", THU, "Graph Neural Network pruning", announce_type=AnnounceType.CROSS)
    # Came for Wednesday after Wednesday completed: a late paper, under its own date.
    add_paper("2605.20006", WED, "Late reinforcement learning", updated_at=datetime.now(UTC))
    # An incomplete day: its digests have not gone out, nor has the feed.
    session.add(ListingDay(listing_date=MON, completed_at=None))
    add_paper("2606.00001", MON, "Reinforcement learning on Monday")
    session.commit()

    for subscriber in (plain, both, author):
        parsed = parse(client.get(path(app, subscriber)))
        per_day: dict[str, set[str]] = {}
        for entry in parsed.entries:
            per_day.setdefault(entry.updated, set()).add(arxiv_id(entry))
        expected = {
            calendar.announcement_instant(d).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"): ids
            for d in (WED, THU, DEMO_LISTING_DATE)
            if (ids := core_ids(app, subscriber, d))
        }
        assert per_day == expected
        ids = {arxiv_id(entry) for entry in parsed.entries}
        assert "2606.00001" not in ids and "2605.20006" in ids
        assert ("2605.10004" in ids) is subscriber.include_replacements
        if subscriber is author:
            assert ids == {"2605.20001", "2605.20002", "2605.20005", "2605.20006"}
    # Newest listing date first.
    parsed = parse(client.get(path(app, plain)))
    assert [arxiv_id(e) for e in parsed.entries][-3:] == ["2605.20002", "2605.20006", "2605.20001"]
    assert parsed.entries[0].updated > parsed.entries[-1].updated


def test_only_the_last_30_complete_listing_dates_are_in_the_feed(app, client):
    session = db.session()
    reader = add_subscriber("reader@example.org", [RL])
    day = DEMO_LISTING_DATE
    days = []
    for n in range(31):
        days.append(day)
        complete_day(day)
        add_paper(f"2605.{n:05d}", day, f"Reinforcement learning, part {n}")
        day = calendar.previous_listing_date(day)
    session.commit()
    ids = {arxiv_id(entry) for entry in parse(client.get(path(app, reader))).entries}
    assert len(ids) == 30 and "2605.00030" not in ids and "2605.00029" in ids


@pytest.mark.parametrize(
    "status, served",
    [
        (SubscriberStatus.CONFIRMED, True),
        (SubscriberStatus.PAUSED, True),
        (SubscriberStatus.UNCONFIRMED, False),
        (SubscriberStatus.UNSUBSCRIBED, False),
        (SubscriberStatus.BLOCKLISTED, False),
    ],
)
def test_a_feed_is_served_to_confirmed_and_paused_subscribers_only(
    app, client, demo, status, served
):
    demo.status = status
    db.session().commit()
    response = client.get(path(app, demo))
    assert response.status_code == (200 if served else 404)


def test_a_feed_token_is_only_a_feed_token(app, client, demo):
    key = app.config["SECRET_KEY"]
    feed_token = path(app, demo).removeprefix("/feed/")
    manage_token = make_token(key, "manage", demo.public_id)
    assert client.get(f"/feed/{feed_token}").status_code == 200
    # A manage, unsubscribe or digest token does not open the feed, nor a feed token the others.
    assert client.get(f"/feed/{manage_token}").status_code == 404
    for purpose in ("unsubscribe", "confirm"):
        assert client.get(f"/feed/{make_token(key, purpose, demo.public_id)}").status_code == 404
    assert client.get(f"/manage/{feed_token}").status_code == 404
    assert client.get(f"/unsubscribe/{feed_token}").status_code == 404
    # Mistyped, cut off, signed with another key, or naming nobody.
    assert client.get(f"/feed/{feed_token[:-2]}").status_code == 404
    assert client.get("/feed/not-a-token").status_code == 404
    assert (
        client.get(f"/feed/{make_token('another-key', 'feed', demo.public_id)}").status_code == 404
    )
    assert client.get(f"/feed/{make_token(key, 'feed', 'f' * 32)}").status_code == 404
    assert client.get(f"/feed/{make_token(key, 'feed', ['x', 'y'])}").status_code == 404
    # The email links carry it too, for the footer.
    assert subscriber_links(settings(app), demo.public_id)["feed_url"].startswith(
        "http://digest.test/feed/"
    )


def test_the_feed_answers_304_until_its_data_changes(app, client, demo):
    url = path(app, demo)
    first = client.get(url)
    parse(first)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)

    def status(**headers) -> int:
        return client.get(url, headers=headers).status_code

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert status(**{"If-Modified-Since": modified}) == 304
    # A different tag wins over a current date (RFC 9110: If-None-Match first).
    assert status(**{"If-None-Match": '"other"', "If-Modified-Since": modified}) == 200
    # The same bytes every time (the self link is the URL asked for, not a new token).
    assert client.get(url).get_data() == first.get_data()

    # A paper of the window changes: new tag, new date.
    paper = db.session().scalar(select(Paper).where(Paper.arxiv_id == SHARED))
    paper.title = "Diffusion policy, second version"
    paper.updated_at = db.utcnow() + timedelta(seconds=2)
    db.session().commit()
    assert status(**{"If-None-Match": etag}) == 304  # the day's counts are reused for a minute
    feed_cache.DAYS.clear()  # ... as if DAYS_TTL passed
    assert status(**{"If-None-Match": etag}) == 200
    assert status(**{"If-Modified-Since": modified}) == 200
    changed = client.get(url)
    titles = [e.title for e in parse(changed).entries]
    assert "Diffusion policy, second version" in titles
    etag, modified = changed.headers["ETag"], changed.headers["Last-Modified"]

    # A new complete listing date.
    complete_day(date(2026, 6, 1), db.utcnow() + timedelta(seconds=4))
    db.session().commit()
    feed_cache.DAYS.clear()
    assert status(**{"If-None-Match": etag}) == 200
    assert status(**{"If-Modified-Since": modified}) == 200


def test_keywords_saved_on_the_manage_page_change_the_feed_and_its_validators(app, client, demo):
    # Stored an hour ago: Last-Modified counts whole seconds.
    hour_ago = db.utcnow() - timedelta(hours=1)
    session = db.session()
    session.execute(update(Paper).values(updated_at=hour_ago))
    session.execute(update(ListingDay).values(completed_at=hour_ago))
    session.execute(update(Subscriber).values(updated_at=hour_ago))
    session.commit()
    url = path(app, demo)
    first = client.get(url)
    assert len(parse(first).entries) == 66
    manage = f"/manage/{make_token(app.config['SECRET_KEY'], 'manage', demo.public_id)}"
    page = client.get(manage).get_data(as_text=True)
    # The manage page shows the feed's URL, which works.
    shown = re.search(r'<a href="(http://digest\.test/feed/[^"]+)" class="feed-url">', page)
    assert shown and "Atom feed" in page
    assert client.get(shown.group(1).removeprefix("http://digest.test")).status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        manage,
        data={"csrf_token": csrf, "keywords": DP, "language": "en", "timezone": "UTC"},
    )
    assert response.status_code == 302
    # Only the keywords changed; a client that sends only the date sees it too.
    later = client.get(url, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    ids = [arxiv_id(e) for e in parse(later).entries]
    assert len(ids) == 2 and set(ids) == core_ids(app, demo, DEMO_LISTING_DATE)
    assert later.headers["ETag"] != first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


def test_a_subscriber_with_nothing_stored_gets_an_empty_valid_feed(app, client):
    reader = add_subscriber("new@example.org", [RL])
    db.session().commit()
    parsed = parse(client.get(path(app, reader)))
    assert parsed.entries == []
    # Last-Modified is then the subscriber's own change.
    response = client.get(path(app, reader))
    assert response.headers["Last-Modified"] == format_datetime(
        reader.updated_at.replace(microsecond=0), usegmt=True
    )
