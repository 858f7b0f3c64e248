"""Daily or weekly (issue 12 item 2): the sign-up and manage forms and `subscribers import`.

The real app and database: the forms through Flask's test client with their
CSRF tokens, the import through the CLI. Hostile input is refused with one
message per field, on the page or per CSV line, and stores nothing of it.
"""

import pytest
from sqlalchemy import select
from test_cli import rejections, run, stored, write
from test_subscriptions import csrf_from, fresh_rate_limits, sign_up  # noqa: F401 (fixture)

from newsletter import db
from newsletter.forms import read_settings
from newsletter.models import Subscriber
from newsletter.tokens import make_token

HEADER = "email,keywords,language,timezone,frequency,weekday\n"
OVERSIZED = "1" * 5000


@pytest.mark.parametrize(
    ("frequency", "weekday", "values", "errors"),
    [
        ("", "", ("daily", None), set()),  # a form from before weekly digests
        ("daily", "", ("daily", None), set()),
        ("daily", "3", ("daily", 3), set()),  # kept for a later switch
        ("weekly", "0", ("weekly", 0), set()),
        ("weekly", " 6\t", ("weekly", 6), set()),
        ("weekly", "", ("weekly", None), {"weekday"}),
        ("weekly", "7", ("weekly", None), {"weekday"}),
        ("weekly", "-1", ("weekly", None), {"weekday"}),
        ("weekly", "٣", ("weekly", None), {"weekday"}),  # a digit, but not ASCII
        ("weekly", "03", ("weekly", None), {"weekday"}),
        ("weekly", "Monday", ("weekly", None), {"weekday"}),  # the form sends digits
        ("weekly", OVERSIZED, ("weekly", None), {"weekday"}),
        ("daily", "9", ("daily", None), {"weekday"}),
        ("monthly", "0", (None, 0), {"frequency"}),
        ("WEEKLY", "0", (None, 0), {"frequency"}),
        ("weekly\x00", "0", (None, 0), {"frequency"}),
        (OVERSIZED, "0", (None, 0), {"frequency"}),
    ],
)
def test_the_forms_frequency_and_weekday(app, frequency, weekday, values, errors):
    form = {
        "keywords": "diffusion policy",
        "timezone": "UTC",
        "frequency": frequency,
        "weekday": weekday,
    }
    result = read_settings(form, {"en"})
    assert (result.values["frequency"], result.values["weekday"]) == values
    assert set(result.errors) == errors


def manage_url(subscriber: Subscriber) -> str:
    return f"/manage/{make_token('test-secret-key', 'manage', subscriber.public_id)}"


def manage_form(client, url: str, **fields) -> dict:
    form = {
        "csrf_token": csrf_from(client, url),
        "keywords": "diffusion policy",
        "language": "en",
        "timezone": "Asia/Shanghai",
        "delivery_hour": "7",
    }
    form.update(fields)
    return form


def test_sign_up_and_manage_store_the_choice_and_show_it(client):
    assert sign_up(client, frequency="weekly", weekday="4").status_code == 302
    subscriber = db.session().scalars(select(Subscriber)).one()
    assert (subscriber.frequency, subscriber.weekday) == ("weekly", 4)
    assert subscriber.frequency_changed_at is None  # chosen at sign-up, not a change

    url = manage_url(subscriber)
    page = client.get(url).get_data(as_text=True)
    assert '<option value="weekly" selected>' in page
    assert '<option value="4" selected>' in page

    response = client.post(url, data=manage_form(client, url, frequency="daily", weekday="4"))
    assert response.status_code == 302
    db.session().expire_all()
    assert (subscriber.frequency, subscriber.weekday) == ("daily", 4)
    changed = subscriber.frequency_changed_at
    assert changed is not None
    # Saving again without a change keeps the date of the change.
    client.post(url, data=manage_form(client, url, frequency="daily", weekday="2"))
    db.session().expire_all()
    assert (subscriber.weekday, subscriber.frequency_changed_at) == (2, changed)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frequency": "weekly", "weekday": "8"}, "weekday"),
        ({"frequency": "weekly", "weekday": OVERSIZED}, "weekday"),
        ({"frequency": "weekly"}, "weekday"),
        ({"frequency": "fortnightly", "weekday": "1"}, "frequency"),
    ],
)
def test_bad_choices_are_refused_and_keep_the_old_settings(client, fields, field):
    sign_up(client)
    subscriber = db.session().scalars(select(Subscriber)).one()
    url = manage_url(subscriber)
    response = client.post(url, data=manage_form(client, url, **fields))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert OVERSIZED not in page
    db.session().expire_all()
    assert (subscriber.frequency, subscriber.weekday, subscriber.timezone) == (
        "daily",
        None,
        "Europe/Berlin",
    )
    assert sign_up(client, email="bob@example.org", **fields).status_code == 400


def test_import_reads_frequency_and_weekday_by_name_or_number(app, tmp_path):
    path = write(
        tmp_path,
        HEADER + "ada@example.org,diffusion policy,en,UTC,weekly,Friday\n"
        "bob@example.org,diffusion policy,en,UTC,weekly,mon\n"
        "cy@example.org,diffusion policy,en,UTC,weekly,6\n"
        "dee@example.org,diffusion policy,en,UTC,,\n"
        "eve@example.org,diffusion policy,en,UTC,daily,\n",
    )
    result = run(app, "subscribers", "import", path, "--confirmed")
    assert result.stdout == "imported 5, skipped 0 existing, rejected 0\n", result.output
    rows = stored()
    assert {email: (s.frequency, s.weekday) for email, s in rows.items()} == {
        "ada@example.org": ("weekly", 4),
        "bob@example.org": ("weekly", 0),
        "cy@example.org": ("weekly", 6),
        "dee@example.org": ("daily", None),
        "eve@example.org": ("daily", None),
    }
    found = run(app, "subscribers", "find", "ada@example.org")
    assert "  digests: weekly on Friday" in found.stdout.splitlines()


def test_import_refuses_bad_frequencies_and_weekdays_by_line(app, tmp_path):
    path = write(
        tmp_path,
        HEADER + "ok@example.org,diffusion policy,en,UTC,weekly,tue\n"
        "a@example.org,diffusion policy,en,UTC,weekly,funday\n"
        "b@example.org,diffusion policy,en,UTC,weekly,\n"
        "c@example.org,diffusion policy,en,UTC,hourly,mon\n"
        "d@example.org,diffusion policy,en,UTC,weekly,7\n"
        f"e@example.org,diffusion policy,en,UTC,weekly,{OVERSIZED}\n"
        "f@example.org,diffusion policy,en,UTC,weekly,\u0661\n",
    )
    result = run(app, "subscribers", "import", path, "--confirmed")
    assert result.exit_code == 1
    assert result.stdout == "imported 1, skipped 0 existing, rejected 6\n"
    lines = rejections(result.stderr)
    assert [line.split(": ")[0] for line in lines] == [f"line {n}" for n in range(3, 9)]
    assert sum("weekday: Choose the day of the week" in line for line in lines) == 5
    assert sum("frequency: Choose daily or weekly" in line for line in lines) == 1
    assert all(len(line) < 300 for line in lines)  # the oversized value is not echoed
    assert set(stored()) == {"ok@example.org"}
