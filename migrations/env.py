"""Alembic environment: runs migrations on the current app's engine."""

from alembic import context
from flask import current_app

from newsletter.models import Base

config = context.config


def run_migrations_online() -> None:
    connectable = current_app.extensions["db_engine"]
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
