"""Alembic driven from the app: `newsletter db upgrade` and friends."""

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    """Alembic's config pointing at our migrations folder (needs an app context)."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring the current app's database to `revision`."""
    command.upgrade(alembic_config(), revision)
