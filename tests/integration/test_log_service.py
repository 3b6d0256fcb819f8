"""The server's log on a real database: appends, proofs, atomicity, concurrency, checkpoints."""

from __future__ import annotations

import os
import stat
import threading

import pytest
import sqlalchemy as sa

from vault.db.engine import make_engine, make_sessionmaker
from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode, LogState
from vault.protocol import merkle
from vault.protocol.checkpoint import open_checkpoint
from vault.services import auditlog
from vault.services.events import record_event


@pytest.fixture
def sessions(database_url, migrated_template):
    migrated_template.copy_to(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def signer(tmp_path):
    return auditlog.LogSigner.from_data_dir(tmp_path / "data")


def _record(db, n: int, case_id: str | None = None) -> list[int]:
    indices = []
    for i in range(n):
        event = record_event(db, action="file:file:download", case_id=case_id,
                             actor_id="a" * 32, detail={"i": i})
        # The index the recorder hands back is the leaf the event really became.
        assert event.log_index == auditlog.leaf_index_of_event(db, event.event_id)
        indices.append(event.log_index)
    return indices


def _all_entries(db) -> list[bytes]:
    return list(db.scalars(sa.select(LogLeaf.entry).order_by(LogLeaf.leaf_index)))


def test_appends_build_the_rfc_tree_and_every_proof_verifies(sessions):
    with sessions() as db:
        assert _record(db, 21) == list(range(21))
        db.commit()
        entries = _all_entries(db)
        size, root = auditlog.tree_head(db)
        assert size == 21 and root == merkle.root_of_entries(entries)
        for i, entry in enumerate(entries):
            proof = auditlog.inclusion_proof(db, index=i, size=size)
            assert merkle.verify_inclusion(merkle.leaf_hash(entry), i, size, proof, root)
        for first in range(0, 22):
            proof = auditlog.consistency_proof(db, first=first, second=size)
            old_root = merkle.root_of_entries(entries[:first])
            assert auditlog.root_at(db, first) == old_root
            assert merkle.verify_consistency(first, size, old_root, root, proof)
        # Every perfect subtree is stored once, and only those.
        assert db.scalar(sa.select(sa.func.count()).select_from(LogNode)) == 10 + 5 + 2 + 1


def test_entry_holds_the_event_and_the_client_signature(sessions):
    signed = '{"body":"eyJ4IjoxfQ","sig":"c2ln"}'
    with sessions() as db:
        event = record_event(db, action="case:member:add", actor_id="b" * 32,
                             case_id="c" * 32, signed_record=signed, source="192.0.2.1")
        db.commit()
        index = auditlog.leaf_index_of_event(db, event.event_id)
        entry, body = db.execute(
            sa.select(LogLeaf.entry, LogLeaf.body).where(LogLeaf.leaf_index == index)
        ).one()
    from vault.protocol.encoding import parse_canonical

    skeleton = parse_canonical(entry)
    assert skeleton["event_id"] == event.event_id and skeleton["v"] == "cv1/audit-entry/2"
    # Format 2: the event is in the body the skeleton names by hash.
    record = parse_canonical(body)
    assert record["signed_record"] == {"body": "eyJ4IjoxfQ", "sig": "c2ln"}
    assert record["action"] == "case:member:add" and record["case_id"] == "c" * 32


def test_a_rolled_back_event_leaves_no_leaf_and_no_gap(sessions):
    with sessions() as db:
        _record(db, 3)
        db.commit()
        _record(db, 2)
        db.rollback()  # e.g. a crash before commit
        _record(db, 1)
        db.commit()
        assert auditlog.tree_head(db)[0] == 4
        assert [r for r in db.scalars(sa.select(LogLeaf.leaf_index))] == [0, 1, 2, 3]
        assert db.scalar(sa.select(sa.func.count()).select_from(sa.table("audit_events"))) == 4


def test_concurrent_appends_are_serialised_without_gaps_or_duplicates(sessions):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                with sessions() as db:
                    _record(db, 1)
                    db.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with sessions() as db:
        entries = _all_entries(db)
        size, root = auditlog.tree_head(db)
        assert size == 100 == len(entries)
        assert root == merkle.root_of_entries(entries)
        # Every event is exactly one leaf (ids come from a sequence taken before the log lock,
        # so on PostgreSQL leaf order may differ from id order; the entry names its event).
        event_ids = set(db.scalars(sa.select(LogLeaf.event_id)))
        assert event_ids == set(db.scalars(sa.text("SELECT id FROM audit_events")))


def test_checkpoint_is_signed_cached_and_verifiable(sessions, signer):
    with sessions() as db:
        _record(db, 5)
        db.commit()
        note = auditlog.current_checkpoint(db, signer)
        db.commit()
        assert auditlog.current_checkpoint(db, signer) == note
        cp = open_checkpoint(note, signer.verifier)
        assert (cp.size, cp.root_hash) == auditlog.tree_head(db)
        assert db.scalar(sa.select(sa.func.count()).select_from(LogCheckpoint)) == 1


def test_server_refuses_to_sign_a_fork_of_its_own_history(sessions, signer):
    with sessions() as db:
        _record(db, 6)
        db.commit()
        auditlog.current_checkpoint(db, signer)
        db.commit()
        # An intruder rewrites an old leaf and every stored hash above it, then adds an event.
        entries = _all_entries(db)
        entries[1] = b"forged"
        db.execute(sa.delete(LogNode))
        db.execute(sa.delete(LogLeaf))
        db.execute(sa.update(LogState).values(size=0, frontier=b""))
        for i, e in enumerate(entries):
            auditlog.append_leaves(db, [auditlog.PendingLeaf(e, 1000 + i, None, None)])
        _record(db, 1)
        db.commit()
        with pytest.raises(auditlog.LogInconsistent):
            auditlog.current_checkpoint(db, signer)


def test_log_key_file_is_private_and_stable(tmp_path):
    first = auditlog.LogSigner.from_data_dir(tmp_path / "d")
    path = tmp_path / "d" / auditlog.LOG_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auditlog.LogSigner.from_data_dir(tmp_path / "d").public_key == first.public_key
    assert first.origin.startswith("casevault.log/")
    os.chmod(path, 0o644)
    with pytest.raises(auditlog.LogKeyError):
        auditlog.LogSigner.from_data_dir(tmp_path / "d")
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(auditlog.LogKeyError):
        auditlog.LogSigner.from_data_dir(tmp_path / "d")


def test_proofs_beyond_the_tree_are_refused(sessions):
    from vault.errors import InvalidRequest, NotFound

    with sessions() as db:
        _record(db, 3)
        db.commit()
        with pytest.raises(NotFound):
            auditlog.inclusion_proof(db, index=0, size=4)
        with pytest.raises(InvalidRequest):
            auditlog.inclusion_proof(db, index=3, size=3)
        with pytest.raises(InvalidRequest):
            auditlog.consistency_proof(db, first=3, second=2)


def test_migration_puts_earlier_events_into_the_log(database_url, tmp_path):
    from vault.db.migrate import upgrade_database as upgrade

    upgrade(database_url, "0002")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for action in ("account:register:success", "account:login:success"):
                conn.execute(sa.text(
                    "INSERT INTO audit_events (time, action, result, detail) "
                    "VALUES (CURRENT_TIMESTAMP, :a, 'success', '{}')"
                ), {"a": action})
        upgrade(database_url, "0004")
        with make_sessionmaker(engine)() as db:
            assert auditlog.tree_head(db)[0] == 2
        # 0005 closes the format-1 history with its marker leaf.
        upgrade(database_url)
        from vault.logverify import verify_log

        with make_sessionmaker(engine)() as db:
            assert auditlog.tree_head(db)[0] == 3
            record_event(db, action="account:login:failure", result="failure")
            db.commit()
            assert auditlog.tree_head(db)[0] == 4
        with engine.connect() as conn:
            report = verify_log(conn, auditlog.LogSigner.from_data_dir(tmp_path / "k"))
        assert report.ok, report.problems
        assert report.size == 4
    finally:
        engine.dispose()


def test_remembered_head_is_used_only_when_the_database_confirms_it(database_url,
                                                                   migrated_template):
    """Each connection remembers the head it wrote; a rolled-back append or another process's
    append makes that memory stale, and the next append must notice, not fork or gap."""
    migrated_template.copy_to(database_url)
    engine = make_engine(database_url)
    leaf = {n: auditlog.PendingLeaf(f"entry {n}".encode(), 5000 + i, None, None)
            for i, n in enumerate("ABCDE")}
    try:
        with engine.connect() as one, engine.connect() as two:
            base = auditlog.tree_head(one)[0]
            one.rollback()  # end the read, so each step below is its own transaction
            with one.begin():
                assert auditlog.append_leaves(one, [leaf["A"]]) == [base]
            with one.begin() as txn:
                auditlog.append_leaves(one, [leaf["B"]])  # remembered, then rolled back
                txn.rollback()
            with two.begin():
                assert auditlog.append_leaves(two, [leaf["C"]]) == [base + 1]
            with one.begin():
                assert auditlog.append_leaves(one, [leaf["D"]]) == [base + 2]
            with one.begin():  # memory now matches: the one-statement path
                assert auditlog.append_leaves(one, [leaf["E"]]) == [base + 3]
            rows = one.execute(
                sa.select(LogLeaf.entry).where(LogLeaf.leaf_index >= base)
                .order_by(LogLeaf.leaf_index)
            ).scalars().all()
            assert rows == [b"entry A", b"entry C", b"entry D", b"entry E"]
            size, root = auditlog.tree_head(one)
            assert size == base + 4
            prior = one.execute(
                sa.select(LogLeaf.entry).where(LogLeaf.leaf_index < base)
                .order_by(LogLeaf.leaf_index)
            ).scalars().all()
            assert merkle.root_of_entries([*prior, *rows]) == root
            for index in range(size):
                proof = auditlog.inclusion_proof(one, index=index, size=size)
                entry = ([*prior, *rows])[index]
                assert merkle.verify_inclusion(merkle.leaf_hash(entry), index, size, proof, root)
    finally:
        engine.dispose()
