"""Alembic environment: runs migrations on the current app's engine."""

from alembic import context
from flask import current_app

from newsletter.db import UTCDateTime
from newsletter.models import Base

config = context.config


def render_item(type_, obj, autogen_context):
    """Write UTCDateTime as the plain timestamptz it is, so migrations need no app import."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    connectable = current_app.extensions["db_engine"]
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
