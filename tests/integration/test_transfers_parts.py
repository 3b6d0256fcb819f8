"""Versions kept as their ordered part blobs: ranges across parts, damage, collection, migration.

A version uploaded in several parts is never copied into one blob: its part blobs are listed in
order and served back to back. These tests show what that must keep: byte-exact ranges that cross
part boundaries, a clear `blob_damaged` for a missing or short part, a collector that keeps every
part of a live version, and versions stored as one blob before the change still readable.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa
from casekit import PART, CaseKit

from vault.db.engine import make_engine, make_sessionmaker
from vault.db.migrate import upgrade_database
from vault.protocol.ids import new_id
from vault.services.gc import collect_garbage


@pytest.fixture
def setup(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    return kit, case, alice, bob


def _sql(app_settings, statement: str, params: dict | None = None) -> list[tuple]:
    # The server's own engine settings (on SQLite: foreign keys enforced, so cascades run).
    engine = make_engine(app_settings.database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params or {})
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _part_rows(app_settings, file_id: str, version: int = 1) -> list[tuple]:
    return _sql(
        app_settings,
        "SELECT part_number, blob_key, size FROM file_version_parts "
        "WHERE file_id = :f AND version = :v ORDER BY part_number",
        {"f": file_id, "v": version},
    )


def _blob_path(app_settings, key: str):
    return app_settings.resolved_blob_dir() / key[:2] / key


@pytest.fixture
def four_parts(setup, app_settings):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(3 * PART + 7)
    file_id, done = kit.upload(bob, case, data)
    assert done.status_code == 201, done.text
    return kit, case, alice, file_id, data


def test_a_version_is_its_part_blobs_in_order_not_a_copy(four_parts, app_settings):
    kit, case, alice, file_id, data = four_parts
    rows = _part_rows(app_settings, file_id)
    assert [(n, size) for n, _, size in rows] == [(0, PART), (1, PART), (2, PART), (3, 7)]
    # Each stored part blob holds exactly its slice of the file; nothing else was written.
    for n, key, _ in rows:
        assert _blob_path(app_settings, key).read_bytes() == data[n * PART : (n + 1) * PART]
    stored = sorted(p for p in app_settings.resolved_blob_dir().rglob("*") if p.is_file())
    assert sorted(p.name for p in stored) == sorted(key for _, key, _ in rows)
    # The version row names the first part; the listing does not change shape.
    ((first,),) = _sql(
        app_settings, "SELECT blob_key FROM file_versions WHERE file_id = :f", {"f": file_id}
    )
    assert first == rows[0][1]
    r = kit.download(alice, case, file_id)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-length"] == str(len(data))


@pytest.mark.parametrize(
    "first,last",
    [
        (PART - 1, PART),  # the last byte of part 0 and the first of part 1
        (PART - 10, 2 * PART + 5),  # across a whole middle part
        (PART, 2 * PART - 1),  # exactly one part
        (2 * PART, 3 * PART + 6),  # from a boundary to the end, into the short last part
        (3 * PART + 6, 3 * PART + 6),  # the very last byte
        (0, 3 * PART + 6),  # everything
    ],
)
def test_ranges_across_part_boundaries_are_byte_exact(four_parts, first, last):
    kit, case, alice, file_id, data = four_parts
    r = kit.download(alice, case, file_id, Range=f"bytes={first}-{last}")
    assert r.status_code == 206, r.text
    assert r.content == data[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    assert r.headers["content-length"] == str(last - first + 1)


def test_suffix_range_and_unsatisfiable_range_over_parts(four_parts):
    kit, case, alice, file_id, data = four_parts
    r = kit.download(alice, case, file_id, Range=f"bytes=-{PART + 3}")
    assert r.status_code == 206 and r.content == data[-(PART + 3) :]
    r = kit.download(alice, case, file_id, Range=f"bytes={len(data)}-")
    assert r.status_code == 416 and r.json()["code"] == "range_not_satisfiable"
    assert r.headers["content-range"] == f"bytes */{len(data)}"


def test_download_resumed_at_every_part_boundary_reassembles_the_file(four_parts):
    kit, case, alice, file_id, data = four_parts
    cuts = [0, PART - 1, PART, 2 * PART + 1, 3 * PART, len(data)]
    pieces = [
        kit.download(alice, case, file_id, Range=f"bytes={a}-{b - 1}").content
        for a, b in zip(cuts, cuts[1:], strict=False)
    ]
    assert b"".join(pieces) == data


def test_a_missing_part_is_blob_damaged_and_nothing_is_sent(four_parts, app_settings):
    kit, case, alice, file_id, data = four_parts
    rows = _part_rows(app_settings, file_id)
    _blob_path(app_settings, rows[2][1]).unlink()
    r = kit.download(alice, case, file_id)
    assert r.status_code == 500 and r.json()["code"] == "blob_damaged"
    # A range that needs the lost part is refused the same way, before any byte goes out.
    r = kit.download(alice, case, file_id, Range=f"bytes={2 * PART - 5}-{2 * PART + 5}")
    assert r.status_code == 500 and r.json()["code"] == "blob_damaged"
    # The parts that are whole still serve a range that lies within them.
    r = kit.download(alice, case, file_id, Range=f"bytes=0-{PART}")
    assert r.status_code == 206 and r.content == data[: PART + 1]


@pytest.mark.parametrize("change", ["short", "long"])
def test_a_part_of_the_wrong_size_is_blob_damaged(four_parts, app_settings, change):
    kit, case, alice, file_id, data = four_parts
    rows = _part_rows(app_settings, file_id)
    path = _blob_path(app_settings, rows[1][1])
    # Shorter, or longer (which would shift every later byte): either way the copy is damaged.
    body = path.read_bytes()
    path.write_bytes(body[:-100] if change == "short" else body + b"x" * 100)
    r = kit.download(alice, case, file_id)
    assert r.status_code == 500 and r.json()["code"] == "blob_damaged"


def test_completion_hashes_the_parts_and_a_lost_part_blob_is_damage_not_a_version(
    setup, app_settings
):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(2 * PART + 1)
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    for n in range(3):
        assert kit.put_part(bob, case, upload_id, n, data[n * PART : (n + 1) * PART]).is_success
    # A manifest that names other bytes of the same size is refused, and the upload stays.
    other = kit.manifest(bob, case, file_id, 1, secrets.token_bytes(len(data)))
    r = kit.complete(bob, case, upload_id, other)
    assert r.status_code == 400 and r.json()["code"] == "manifest_mismatch"
    ((key,),) = _sql(
        app_settings,
        "SELECT blob_key FROM upload_parts WHERE upload_id = :u AND part_number = 1",
        {"u": upload_id},
    )
    saved = _blob_path(app_settings, key).read_bytes()
    _blob_path(app_settings, key).unlink()
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 500 and r.json()["code"] == "blob_damaged"
    assert kit.download(alice, case, file_id).status_code == 404
    # The part comes back (re-sent by the client): the same upload completes.
    assert kit.put_part(bob, case, upload_id, 1, saved).is_success
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 201, r.text
    assert kit.download(alice, case, file_id).content == data
    assert len(_part_rows(app_settings, file_id)) == 3


def test_gc_keeps_every_part_of_live_versions_and_removes_orphans(setup, app, app_settings, clock):
    kit, case, alice, bob = setup
    store = app.state.blob_store
    data = secrets.token_bytes(2 * PART + 99)
    file_id, done = kit.upload(bob, case, data)
    assert done.status_code == 201
    second = secrets.token_bytes(PART + 1)
    _, done = kit.upload(bob, case, second, file_id=file_id, version=2)
    assert done.status_code == 201
    # A deleted file keeps its blobs too (rows and blobs stay, only marked deleted).
    gone_id, done = kit.upload(bob, case, secrets.token_bytes(PART + 2))
    assert done.status_code == 201
    tomb = kit.client.post(
        f"/v1/cases/{case.case_id}/files/{gone_id}/tombstone",
        json={"tombstone": kit.tombstone(bob, case, gone_id)},
        headers=bob.headers,
    )
    assert tomb.status_code == 200, tomb.text
    orphans = [store.put([secrets.token_bytes(100)]).key for _ in range(3)]
    live = {key for _, key, _ in _part_rows(app_settings, file_id)}
    live |= {key for _, key, _ in _part_rows(app_settings, file_id, 2)}
    live |= {key for _, key, _ in _part_rows(app_settings, gone_id)}
    assert len(live) == 3 + 2 + 2
    engine = make_engine(app_settings.database_url)
    db = make_sessionmaker(engine)()
    try:
        later = clock.now + timedelta(seconds=app_settings.orphan_blob_min_age + 60)
        report = collect_garbage(db, store, app_settings, now=later)
    finally:
        db.close()
        engine.dispose()
    assert report.blobs_removed == len(orphans)
    assert {e.key for e in store.iter_blobs()} == live
    assert kit.download(alice, case, file_id).content == data
    assert kit.download(alice, case, file_id, version=2).content == second


def test_deleting_a_version_row_takes_its_part_list_with_it(four_parts, app_settings):
    kit, case, alice, file_id, data = four_parts
    _sql(app_settings, "DELETE FROM file_versions WHERE file_id = :f", {"f": file_id})
    assert _part_rows(app_settings, file_id) == []


# ---------------------------------------------------------------- versions stored before 0004


@pytest.fixture
def app_settings(request, database_url, tmp_path):
    """This module's tests run at head."""
    from vault.config import Settings

    upgrade_database(database_url)
    return Settings(
        data_dir=tmp_path / "server-data",
        database_url=database_url,
        test_insecure_kdf=True,
        rate_limit_address_attempts=100_000,
    )


def test_old_style_single_blob_version_stays_readable_after_0004(setup, app, app_settings, clock):
    kit, case, alice, bob = setup
    # Before 0004 a completed version was one blob holding the whole file: the same rows as an
    # upload in one part (no part rows). The app no longer runs on a 0003 database (0005 adds
    # columns every audit append writes), so those rows are made by a one-part upload.
    data = secrets.token_bytes(3 * PART + 7)
    file_id, done = kit.upload(bob, case, data, part_size=len(data))
    assert done.status_code == 201, done.text
    assert _part_rows(app_settings, file_id) == []
    r = kit.download(alice, case, file_id)
    assert r.status_code == 200 and r.content == data
    assert r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    r = kit.download(alice, case, file_id, Range=f"bytes={PART - 3}-{2 * PART + 3}")
    assert r.status_code == 206 and r.content == data[PART - 3 : 2 * PART + 4]
    # Kept by the collector, and still damage-checked like any blob.
    store = app.state.blob_store
    engine = make_engine(app_settings.database_url)
    db = make_sessionmaker(engine)()
    try:
        later = clock.now + timedelta(seconds=app_settings.orphan_blob_min_age + 60)
        assert collect_garbage(db, store, app_settings, now=later).blobs_removed == 0
    finally:
        db.close()
        engine.dispose()
    ((key,),) = _sql(
        app_settings, "SELECT blob_key FROM file_versions WHERE file_id = :f", {"f": file_id}
    )
    path = _blob_path(app_settings, key)
    path.write_bytes(path.read_bytes()[:-1])
    r = kit.download(alice, case, file_id)
    assert r.status_code == 500 and r.json()["code"] == "blob_damaged"
    # New uploads on the migrated database are kept in parts, side by side with the old one.
    new_file, done = kit.upload(bob, case, data)
    assert done.status_code == 201
    assert len(_part_rows(app_settings, new_file)) == 4
    assert kit.download(alice, case, new_file).content == data


def test_downgrade_below_0004_is_refused_while_versions_are_kept_in_parts(four_parts, app_settings):
    kit, case, alice, file_id, data = four_parts
    # 0005 refuses first while the audit log holds format-2 leaves; either refusal keeps the
    # part rows.
    with pytest.raises(RuntimeError, match="unreadable|format-2 leaves"):
        _downgrade_database(app_settings.database_url, "0003")
    assert len(_part_rows(app_settings, file_id)) == 4
    assert kit.download(alice, case, file_id).content == data


def _downgrade_database(url: str, revision: str) -> None:
    """Alembic downgrade to `revision` in one transaction, as `upgrade_database` upgrades."""
    from alembic import command

    from vault.db.migrate import alembic_config

    config = alembic_config()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_migration_0004_builds_the_part_list_table_the_models_describe(app_settings):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import vault.db.models  # noqa: F401  (registers the tables)
    from vault.db.base import Base

    engine = make_engine(app_settings.database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert [d for d in diff if "file_version_parts" in repr(d)] == []
