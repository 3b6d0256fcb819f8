"""Alembic environment: runs on the connection handed in by vault.db.migrate, or on
CASEVAULT_DATABASE_URL / sqlalchemy.url when run from the alembic command line."""

from __future__ import annotations

import os

from alembic import context

import vault.db.models  # noqa: F401  (registers the tables for autogenerate)
from vault.db.base import Base
from vault.db.engine import make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ["CASEVAULT_DATABASE_URL"]
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
