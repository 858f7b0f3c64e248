"""Alembic builds the whole schema on an empty database, and the models and the
migrations agree (autogenerate finds nothing to do); Flask-Migrate's commands
(`newsletter db current`, `downgrade`, `migrate`) work over migrations/."""

import shutil

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from newsletter import create_app, migrate
from newsletter.cli import main
from newsletter.models import Base


@pytest.fixture
def empty_database(database_url):
    """The test database emptied (no tables, no alembic_version); afterwards the
    schema is put back as the other tests expect it."""
    engine = create_engine(database_url)

    def empty() -> None:
        Base.metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))

    empty()
    yield engine
    empty()
    Base.metadata.create_all(engine)
    engine.dispose()


def test_upgrade_on_an_empty_database_creates_every_table_without_drift(config, empty_database):
    engine = empty_database
    app = create_app(config)
    try:
        for _ in range(2):  # a second upgrade finds nothing to do
            result = app.test_cli_runner().invoke(main, ["db", "upgrade"])
            assert result.exit_code == 0, result.output
            assert "database at head" in result.output
        app.extensions["db_engine"].dispose()

        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        app.extensions["db_engine"].dispose()


def test_downgrade_to_base_and_up_again_and_nothing_to_autogenerate(
    config, empty_database, tmp_path
):
    engine = empty_database
    app = create_app(config)
    cli = app.test_cli_runner()

    def db(*args: str) -> str:
        result = cli.invoke(main, ["db", *args])
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    try:
        with app.app_context():
            head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
        assert head is not None
        assert "database at head" in db("upgrade")
        assert db("current").split() == [head, "(head)"]

        db("downgrade", "base")
        assert db("current").strip() == ""
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        assert "database at head" in db("upgrade")
        assert db("current").split() == [head, "(head)"]
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())

        # `db migrate` on a schema at head: autogenerate finds no change and
        # writes no revision (run on a copy, so a drift never lands in migrations/).
        copy = tmp_path / "migrations"
        shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
        before = sorted(p.name for p in (copy / "versions").glob("*.py"))
        db("migrate", "--directory", str(copy), "-m", "drift")
        written = sorted(p.name for p in (copy / "versions").glob("*.py"))
        assert written == before, [
            (copy / "versions" / name).read_text() for name in set(written) - set(before)
        ]
    finally:
        app.extensions["db_engine"].dispose()


def test_each_downgrade_and_upgrade_keeps_a_subscribers_deliveries(config, empty_database):
    """SQLite's batch mode rebuilds a table by dropping it: with foreign keys on,
    rebuilding `subscribers` (0006's downgrade) cascaded to every delivery."""
    engine = empty_database
    app = create_app(config)
    cli = app.test_cli_runner()

    def db(*args: str) -> None:
        result = cli.invoke(main, ["db", *args])
        assert result.exit_code == 0, (args, result.output, result.exception)

    def deliveries() -> int:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM deliveries")).scalar_one()

    try:
        db("upgrade")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO subscribers (public_id, email, email_key, status, language,"
                    " timezone, include_replacements, bounce_count, created_at, updated_at)"
                    " VALUES ('p1', 'a@example.org', 'a@example.org', 'confirmed', 'en', 'UTC',"
                    " false, 0, '2024-11-27 00:00:00+00', '2024-11-27 00:00:00+00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO deliveries (subscriber_id, listing_date, status, message_id,"
                    " paper_count, attempts, created_at) SELECT id, '2024-11-28', 'sent', '<m1@example.org>',"
                    " 3, 1, '2024-11-28 01:00:00+00' FROM subscribers"
                )
            )
        for revision in ("0005", "0004", "0003"):
            db("downgrade", revision)
            assert deliveries() == 1, f"after the downgrade to {revision}"
        db("upgrade")
        assert deliveries() == 1
    finally:
        app.extensions["db_engine"].dispose()
