"""A malicious server, played by editing its real database, against the verifying client.

Each attack is carried out the way an intruder with the database (or a dishonest operator)
would: rewrite an old event, drop one, restore an older backup, or show two users two
histories. Each is caught by client.auditlog, which saves the evidence.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from client.auditlog import AuditLog, AuditVerificationError
from vault.db.base import utcnow
from vault.db.engine import make_engine, make_sessionmaker
from vault.db.models.cases import Case, CaseMember
from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode, LogState
from vault.protocol import logentry
from vault.protocol.encoding import canonical_json, parse_canonical
from vault.protocol.ids import new_id
from vault.services import auditlog
from vault.services.events import record_event


@pytest.fixture
def db(app_settings):
    engine = make_engine(app_settings.resolved_database_url())
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def _transport(client, user):
    def get_json(path, params):
        response = client.get(path, params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()

    return get_json


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def alice_log(client, alice, tmp_path):
    return AuditLog(tmp_path / "alice-home", _transport(client, alice))


def _events(db, n: int, *, actor_id: str | None = None, case_id: str | None = None) -> list[int]:
    ids = []
    for i in range(n):
        event = record_event(db, action="file:file:download", actor_id=actor_id,
                             case_id=case_id, detail={"n": i})
        ids.append(event.event_id)
    db.commit()
    return ids


def _entries(db) -> list[tuple[bytes, int, str | None, str | None]]:
    rows = db.execute(sa.select(LogLeaf).order_by(LogLeaf.leaf_index)).scalars()
    return [(r.entry, r.event_id, r.case_id, r.actor_id) for r in rows]


def _rebuild(db, entries) -> None:
    """What a careful intruder does: rebuild every stored hash so the tree looks whole, and
    drop the server's record of what it signed so it will sign the new history."""
    db.execute(sa.delete(LogNode))
    db.execute(sa.delete(LogLeaf))
    db.execute(sa.delete(LogCheckpoint))
    db.execute(sa.update(LogState).values(size=0, frontier=b""))
    auditlog.append_leaves(db, [auditlog.PendingLeaf(*e) for e in entries])
    db.commit()


def _evidence_files(home) -> list:
    return sorted((home / "evidence").glob("*.txt"))


def test_honest_log_verifies_and_advances(db, alice_log, alice):
    first = alice_log.refresh()
    _events(db, 5, actor_id=alice.user_id)
    second = alice_log.refresh()
    assert second.size == first.size + 5
    assert alice_log.pinned()[0] == second
    assert not (alice_log.home / "evidence").exists()


def test_rewritten_old_event_is_caught(db, alice_log, alice):
    _events(db, 6, actor_id=alice.user_id)
    alice_log.refresh()
    entries = _entries(db)
    entry, event_id, case_id, actor_id = entries[-4]
    forged = entry.replace(b'"time":"20', b'"time":"19')  # the event backdated a century
    assert forged != entry
    entries[-4] = (forged, event_id, case_id, actor_id)
    _rebuild(db, entries)
    _events(db, 1)  # the log moves on, so the client asks for a consistency proof
    with pytest.raises(AuditVerificationError, match="not an extension"):
        alice_log.refresh()
    evidence = _evidence_files(alice_log.home)
    assert evidence and "pinned checkpoint" in evidence[0].read_text()


def test_rewritten_entry_without_rebuilt_hashes_fails_its_inclusion_proof(
    db, client, make_user, tmp_path
):
    owner = make_user("owner")
    case_id = new_id()
    db.add(Case(id=case_id, created_by=owner.user_id, created_at=utcnow(), encrypted_info="x",
                membership_seq=0, membership_head="0" * 64, generation=1))
    db.add(CaseMember(case_id=case_id, user_id=owner.user_id, role="owner",
                      fingerprint="f" * 64, added_at=utcnow()))
    db.commit()
    _events(db, 3, actor_id=owner.user_id, case_id=case_id)
    log = AuditLog(tmp_path / "owner-home", _transport(client, owner))
    listed = log.case_entries(case_id)
    assert [e["record"]["detail"]["n"] for e in listed] == [0, 1, 2]
    assert {e["actor"] for e in listed} == {"owner"}
    # The server edits what the entry says (say, who downloaded) but cannot fix the hashes:
    # an edited body no longer matches its skeleton...
    leaf = db.get(LogLeaf, listed[1]["index"])
    original_body, original_entry = leaf.body, leaf.entry
    leaf.body = original_body.replace(b'"action":"', b'"action":"x')
    db.commit()
    with pytest.raises(AuditVerificationError, match="does not match its leaf"):
        log.case_entries(case_id)
    # ...and a skeleton made to name the edited body is not the leaf the tree holds.
    leaf.entry = canonical_json(
        dict(parse_canonical(original_entry), body=logentry.body_hash(leaf.body)))
    db.commit()
    with pytest.raises(AuditVerificationError, match="not in the signed log"):
        log.case_entries(case_id)


def test_case_entries_are_for_members_only(db, client, make_user):
    owner, outsider = make_user("owner2"), make_user("outsider")
    case_id = new_id()
    db.add(Case(id=case_id, created_by=owner.user_id, created_at=utcnow(), encrypted_info="x",
                membership_seq=0, membership_head="0" * 64, generation=1))
    db.add(CaseMember(case_id=case_id, user_id=owner.user_id, role="owner",
                      fingerprint="f" * 64, added_at=utcnow()))
    db.commit()
    _events(db, 2, actor_id=owner.user_id, case_id=case_id)
    ok = client.get("/v1/log/entries", params={"case_id": case_id}, headers=owner.headers)
    assert ok.status_code == 200 and len(ok.json()["entries"]) == 2
    denied = client.get("/v1/log/entries", params={"case_id": case_id},
                        headers=outsider.headers)
    missing = client.get("/v1/log/entries", params={"case_id": new_id()},
                         headers=outsider.headers)
    assert denied.status_code == missing.status_code == 404
    assert denied.json()["code"] == missing.json()["code"]
    assert client.get("/v1/log/checkpoint").status_code == 401


def test_dropped_event_is_caught(db, alice_log, alice):
    _events(db, 8, actor_id=alice.user_id)
    alice_log.refresh()
    entries = _entries(db)
    del entries[3]
    _rebuild(db, entries)
    with pytest.raises(AuditVerificationError, match="shrank"):
        alice_log.refresh()
    _events(db, 3)  # padding the log back past the pinned size does not help
    with pytest.raises(AuditVerificationError, match="not an extension"):
        alice_log.refresh()


def test_database_restored_from_an_older_backup_is_caught(db, alice_log, alice):
    _events(db, 4, actor_id=alice.user_id)
    backup = _entries(db)
    _events(db, 4, actor_id=alice.user_id)
    alice_log.refresh()
    _rebuild(db, backup)  # the backup knows nothing of the later events or checkpoints
    with pytest.raises(AuditVerificationError, match="shrank"):
        alice_log.refresh()


def test_receipt_of_own_action_is_kept_and_rechecked(db, alice_log, alice):
    _events(db, 3, actor_id=alice.user_id)
    index = auditlog.leaf_index_of_event(db, _events(db, 1, actor_id=alice.user_id)[0])
    receipt = alice_log.fetch_receipt(index, expect={"actor_id": alice.user_id})
    assert receipt["index"] == index
    _events(db, 5)
    assert alice_log.verify_receipts() == 1
    # The server rewrites history to erase the action and rebuilds a self-consistent tree.
    entries = _entries(db)
    del entries[index]
    _rebuild(db, entries)
    _events(db, 2)
    with pytest.raises(AuditVerificationError):
        alice_log.verify_receipts()


def test_forked_views_are_caught_by_the_client_and_by_comparing(
    db, client, alice, make_user, tmp_path
):
    bob = make_user("bob")
    _events(db, 3)
    alice_log = AuditLog(tmp_path / "a", _transport(client, alice))
    bob_log = AuditLog(tmp_path / "b", _transport(client, bob))
    alice_log.refresh()
    bob_log.refresh()
    common = _entries(db)
    _events(db, 2, actor_id=alice.user_id)
    alice_view = alice_log.refresh()
    alice_text = alice_log.pinned()[1]
    # The server now shows Bob a different history of the same length.
    forged = common + [
        (b'{"forged":%d}' % i, 10_000 + i, None, None) for i in range(alice_view.size - len(common))
    ]
    _rebuild(db, forged)
    bob_view = bob_log.refresh()  # Bob alone cannot tell
    assert bob_view.size == alice_view.size and bob_view.root_hash != alice_view.root_hash
    with pytest.raises(AuditVerificationError, match="fork"):
        alice_log.refresh()
    # Co-counsel compare checkpoints (the share record carries the sharer's).
    with pytest.raises(AuditVerificationError, match="fork"):
        bob_log.compare_checkpoint(alice_text)
    evidence = _evidence_files(tmp_path / "b")[-1].read_text()
    assert alice_text in evidence


def test_checkpoint_signed_by_another_key_is_refused(db, client, alice, alice_log, app):
    alice_log.refresh()
    import nacl.signing

    app.state.log_signer = auditlog.LogSigner(nacl.signing.SigningKey.generate())
    _events(db, 1)
    with pytest.raises(AuditVerificationError, match="bad signature"):
        alice_log.refresh()


def test_compare_accepts_an_older_consistent_checkpoint(db, client, alice, make_user, tmp_path):
    bob = make_user("bob2")
    bob_log = AuditLog(tmp_path / "b", _transport(client, bob))
    alice_log = AuditLog(tmp_path / "a", _transport(client, alice))
    alice_log.refresh()
    older = alice_log.pinned()[1]
    _events(db, 3)
    assert bob_log.compare_checkpoint(older).size < bob_log.refresh().size
