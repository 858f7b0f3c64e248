"""Alembic builds the whole schema on an empty database, and the models and the
migrations agree (autogenerate finds nothing to do)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from newsletter import create_app
from newsletter.cli import main
from newsletter.models import Base


def test_upgrade_on_an_empty_database_creates_every_table_without_drift(config, database_url):
    engine = create_engine(database_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    try:
        app = create_app(config)
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
        # Leave the schema as the other tests expect it.
        Base.metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        Base.metadata.create_all(engine)
        engine.dispose()
