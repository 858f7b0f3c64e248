from sqlalchemy import select

from newsletter import db
from newsletter.models import Subscriber


def test_app_starts_on_an_empty_database(app):
    assert db.session().scalars(select(Subscriber)).all() == []
