"""Apply Alembic migrations programmatically (`casevault-server serve|migrate`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from vault.db.engine import make_engine

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind `engine` to `revision` in one transaction per migration run."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def upgrade_database(url: str, revision: str = "head") -> None:
    engine = make_engine(url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()
