"""Migration 0001 builds exactly the account tables the models describe, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import vault.db.models  # noqa: F401  (registers the tables)
from vault.cli import main
from vault.db.base import Base
from vault.db.engine import make_engine
from vault.db.migrate import upgrade_database

ACCOUNT_TABLES = {
    "users", "totp_recovery_codes", "sessions", "invites", "rate_limits", "audit_events",
}


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    def table_of(entry) -> str | None:
        item = entry[0] if isinstance(entry, list) else entry
        for part in item[1:]:
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if name in ACCOUNT_TABLES:
                return name
        return None

    return [entry for entry in diff if table_of(entry) in ACCOUNT_TABLES]


def test_migrated_schema_matches_the_models(database_url):
    upgrade_database(database_url)
    assert _diff(database_url) == []


def test_migrate_command_is_idempotent(database_url, tmp_path, capsys):
    args = ["migrate", "--data-dir", str(tmp_path / "data"), "--database-url", database_url]
    assert main(args) == 0
    assert main(args) == 0
    assert "current schema" in capsys.readouterr().out
    assert _diff(database_url) == []


def test_cli_reports_an_unreachable_database_without_a_traceback(tmp_path, capsys):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    assert main(["migrate", "--data-dir", str(tmp_path), "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("casevault-server: database error")
    assert "Traceback" not in err


def test_the_comparison_sees_drift(database_url):
    import sqlalchemy as sa

    upgrade_database(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_audit_events_case_id"))
    engine.dispose()
    assert [entry[0] for entry in _diff(database_url)] == ["add_index"]
