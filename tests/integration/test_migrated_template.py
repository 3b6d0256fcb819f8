"""The suite's migrated-database copies (tests/conftest.py, MigratedTemplate) are what a real
Alembic upgrade makes: same revision, tables, columns, keys, indexes and constraints, on the
database kind under test. Without this the speed-up could drift from the migrations."""

from __future__ import annotations

import sqlalchemy as sa

from vault.db.migrate import upgrade_database


def _shape(url: str) -> dict:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            shape: dict = {}
            for table in sorted(inspector.get_table_names()):
                shape[table] = {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                        for c in inspector.get_columns(table)
                    ],
                    "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                    "fks": sorted(
                        (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
                        for fk in inspector.get_foreign_keys(table)
                    ),
                    "indexes": sorted(
                        (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                        for ix in inspector.get_indexes(table)
                    ),
                    "unique": sorted(
                        (u["name"] or "", tuple(u["column_names"]))
                        for u in inspector.get_unique_constraints(table)
                    ),
                    "checks": sorted(
                        (ck["name"] or "", ck["sqltext"])
                        for ck in inspector.get_check_constraints(table)
                    ),
                }
            shape["revision"] = conn.execute(
                sa.text("SELECT version_num FROM alembic_version")
            ).scalars().all()
            shape["rows"] = {
                table: conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                for table in inspector.get_table_names()
            }
            return shape
    finally:
        engine.dispose()


def test_template_copy_matches_a_real_upgrade(database_url, second_database_url, migrated_template):
    upgrade_database(second_database_url)
    migrated_template.copy_to(database_url)
    real, copied = _shape(second_database_url), _shape(database_url)
    assert real["revision"] and len(real["rows"]) > 10  # the whole schema, not two empty answers
    assert copied == real
