"""Migration 0005 on a log that holds format-1 history, on SQLite and PostgreSQL.

The history clients pinned must not change by a byte (their checkpoints must stay consistent);
one marker leaf closes it; every later event is a format-2 leaf; `first_v2` says where.
"""

from __future__ import annotations

import sqlalchemy as sa

from vault.db.engine import make_engine, make_sessionmaker
from vault.db.migrate import upgrade_database
from vault.db.models.events import AuditEvent
from vault.db.models.log import LogLeaf
from vault.errors import InvalidRequest
from vault.logverify import verify_log
from vault.protocol import logentry, merkle
from vault.services import auditlog
from vault.services.events import record_event


def _leaves(conn) -> list[bytes]:
    rows = conn.execute(sa.text("SELECT entry FROM log_leaves ORDER BY leaf_index"))
    return [bytes(r[0]) for r in rows]


def test_format_1_history_is_kept_and_format_2_follows(database_url, tmp_path):
    upgrade_database(database_url, "0004")
    engine = make_engine(database_url)
    signer = auditlog.LogSigner.from_data_dir(tmp_path / "k")
    try:
        with engine.begin() as conn:
            for action, source in (("account:register:success", "192.0.2.1"),
                                   ("account:login:success", "192.0.2.1"),
                                   ("account:login:failure", "198.51.100.9")):
                conn.execute(sa.text(
                    "INSERT INTO audit_events (time, action, result, detail, source) "
                    "VALUES (CURRENT_TIMESTAMP, :a, 'success', '{}', :s)"
                ), {"a": action, "s": source})
            auditlog.append_leaves(conn, [
                auditlog.PendingLeaf(auditlog.entry_for_event(row), row.id, None, None)
                for row in conn.execute(auditlog.select_event_rows().order_by(sa.text("id")))
            ])
            history = _leaves(conn)
            old_root = merkle.root_of_entries(history)
            # A client pinned this checkpoint before the upgrade.
            pinned = auditlog.current_checkpoint(conn, signer)
        assert len(history) == 3 and all(b'"v":"cv1/audit-entry"' in e for e in history)

        upgrade_database(database_url)

        with make_sessionmaker(engine)() as db:
            assert auditlog.first_v2(db) == 4  # three events and the marker
            for source in ("203.0.113.5", None):
                record_event(db, action="account:login:success", actor_id="a" * 32,
                             source=source)
            db.commit()
            leaves = list(db.scalars(sa.select(LogLeaf).order_by(LogLeaf.leaf_index)))
            assert [bytes(leaf.entry) for leaf in leaves[:3]] == history
            assert auditlog.root_at(db, 3) == old_root
            size, root = auditlog.tree_head(db)
            proof = auditlog.consistency_proof(db, first=3, second=size)
            assert merkle.verify_consistency(3, size, old_root, root, proof)
            # The marker is format 1 and names no one, so it may be shown to every user.
            marker = logentry.parse_entry_v1(bytes(leaves[3].entry))
            assert marker["action"] == "server:log:leaf_format_changed"
            assert (marker["actor_id"], marker["source"], marker["case_id"]) == (None,) * 3
            assert leaves[3].body is None
            # Events after first_v2 are format 2, their addresses committed with fresh nonces.
            for leaf in leaves[4:]:
                body = logentry.check_body(logentry.parse_skeleton(bytes(leaf.entry)),
                                           bytes(leaf.body))
                event = db.get(AuditEvent, leaf.event_id)
                if event.source is None:
                    assert body.source_commitment is None and event.source_nonce is None
                else:
                    assert logentry.check_source(body, event.source, event.source_nonce)
                    assert event.source.encode() not in bytes(leaf.body)
            # A range may begin at the marker, never inside the history.
            note = auditlog.current_checkpoint(db, signer)
            db.commit()
            assert note != pinned
            page = auditlog.leaf_range(db, start=3, end=size, size=size, with_frontier=True)
            hashes = [merkle.leaf_hash(s) for s in page.skeletons]
            assert merkle.verify_range(page.frontier, 3, hashes, size, root)
            try:
                auditlog.leaf_range(db, start=2, end=size, size=size, with_frontier=False)
            except InvalidRequest:
                pass
            else:
                raise AssertionError("format-1 history was served as a public range")
        with engine.connect() as conn:
            report = verify_log(conn, signer)
        assert report.ok, report.problems
        assert report.size == 6
    finally:
        engine.dispose()


def test_verify_log_catches_a_rewritten_format_2_body(database_url, tmp_path):
    upgrade_database(database_url)
    engine = make_engine(database_url)
    signer = auditlog.LogSigner.from_data_dir(tmp_path / "k")
    try:
        with make_sessionmaker(engine)() as db:
            assert auditlog.first_v2(db) == 0
            for _ in range(3):
                record_event(db, action="account:login:success", actor_id="a" * 32,
                             source="192.0.2.1")
            db.commit()
        # An operator swaps the stored address of event 2 (its commitment no longer opens),
        # and the stored body of leaf 0 (no longer the one its skeleton names).
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE audit_events SET source = '10.0.0.1' WHERE id = 2"))
            conn.execute(sa.text("UPDATE log_leaves SET body = :b WHERE leaf_index = 0"),
                         {"b": b"{}"})
        with engine.connect() as conn:
            report = verify_log(conn, signer)
        assert sorted(report.problems) == [
            "leaf 0: event 1 was edited or moved",
            "leaf 1: event 2 was edited or moved",
        ]
    finally:
        engine.dispose()
