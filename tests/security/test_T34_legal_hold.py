"""T34: a legal hold must stop every deletion of a held case, and a server that deletes anyway
must be caught.

The hold is an owner-signed entry of the membership log (SPEC 4.2.1). Real lawyers
(`client.vault.Vault`) talk to a real uvicorn; the hostile server is played by rewriting its
database and its blob folder, as an operator with the disk would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from client.cli.exits import EXIT_ERROR, EXIT_INTEGRITY, exit_code
from client.crypto.errors import IntegrityError
from client.errors import CaseOnHold, Forbidden, VaultError
from vault.protocol.membership import membership_entry_body
from vault.protocol.records import LABEL_MEMBERSHIP, LABEL_TOMBSTONE, tombstone_body

REASON = "Preservation order, Crown Court ref 2026/117"


def _sql(database_url: str, statement: str, **params: object) -> list[tuple]:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _head_seq(vault, case_id: str) -> int:
    return len(vault.api.membership(case_id)["entries"]) - 1


def _tombstone(vault, case_id: str, file_id: str, seq: int) -> dict:
    """A tombstone exactly as a deleting client signs it, at membership position `seq`."""
    me = vault.identity()
    body = tombstone_body(case_id=case_id, file_id=file_id, membership_seq=seq,
                          deleter=me.user_id, time=2_000_000_000)
    return me.sign(LABEL_TOMBSTONE, body)


@pytest.fixture
def held_case(lawyer, tmp_path):
    """Alice's case with two files, Bob an editor, and a hold Alice placed.

    Returns (alice, bob, case_id, [file ids], seq of the last entry before the hold)."""
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Haldane")
    alice.share(case_id, "bob", role="editor")
    ids = []
    for name in ("interview.txt", "cctv-log.txt"):
        doc = tmp_path / name
        doc.write_bytes(f"contents of {name}".encode())
        (put,) = alice.put(case_id, [doc])
        ids.append(put["file_id"])
    before = _head_seq(alice, case_id)
    placed = alice.hold(case_id, REASON)
    assert placed == {"case_id": case_id, "hold": True, "reason": REASON}
    return alice, bob, case_id, ids, before


def test_T34_hold_is_shown_from_the_clients_own_replay(held_case, database_url):
    alice, bob, case_id, _, _ = held_case
    (listed,) = alice.list_cases()
    assert listed["hold"] == REASON
    status = bob.hold_status(case_id)
    assert status is not None
    assert (status["reason"], status["placed_by"]) == (REASON, "alice")
    # The entry is in the audit log as a membership event carrying the signed entry.
    events = [e["action"] for e in alice.audit(case_id)]
    assert "case:hold:placed" in events
    # The hold changed no member and no key generation.
    assert {m["username"]: m["role"] for m in alice.members(case_id)} == {
        "alice": "owner", "bob": "editor"}
    ((generation,),) = _sql(database_url, "SELECT generation FROM cases WHERE id = :c",
                            c=case_id)
    assert generation == 0


def test_T34_client_refuses_rm_before_any_request(held_case):
    alice, bob, case_id, ids, _ = held_case
    for who in (alice, bob):
        with pytest.raises(CaseOnHold, match="legal hold placed by alice") as caught:
            who.rm(case_id, ids[0])
        assert exit_code(caught.value) == EXIT_ERROR
    assert {f["file_id"] for f in alice.ls(case_id)} == set(ids)


@pytest.mark.parametrize("signed_at", ["head", "before_hold"])
def test_T34_server_refuses_a_valid_tombstone_under_hold(held_case, signed_at):
    """A client that ignores the hold (or replays a tombstone signed before it) gets a 409."""
    alice, bob, case_id, ids, before = held_case
    seq = _head_seq(bob, case_id) if signed_at == "head" else before
    with pytest.raises(CaseOnHold) as refused:
        bob.api.delete_file(case_id, ids[0], _tombstone(bob, case_id, ids[0], seq))
    assert (refused.value.status, refused.value.code) == (409, "case_on_hold")
    assert {f["file_id"] for f in alice.ls(case_id)} == set(ids)


def test_T34_non_owner_cannot_hold_or_release(held_case):
    alice, bob, case_id, _, _ = held_case
    with pytest.raises(VaultError, match="only an owner"):
        bob.release_hold(case_id)
    with pytest.raises(VaultError, match="only an owner"):
        bob.hold(case_id, "an editor's hold")
    # Bob signs a release himself and sends it: the server refuses the editor's entry.
    me = bob.identity()
    body = membership_entry_body(
        case_id=case_id, seq=_head_seq(bob, case_id) + 1, prev_hash=_prev_hash(bob, case_id),
        action="release", subject=me.user_id, subject_fp=me.record().fingerprint_hex,
        role="owner", author=me.user_id, time=2_000_000_000, generation=0)
    with pytest.raises(Forbidden):
        bob.api.append_membership(case_id, {"entry": me.sign(LABEL_MEMBERSHIP, body),
                                            "grants": []})
    assert alice.hold_status(case_id) is not None


def _prev_hash(vault, case_id: str) -> str:
    from client.cases import CaseOps

    return CaseOps(vault.session).load(case_id).state.head_hash


def test_T34_owner_cannot_forge_or_repeat(held_case):
    alice, _, case_id, _, _ = held_case
    with pytest.raises(VaultError, match="already stands"):
        alice.hold(case_id, "again")
    with pytest.raises(VaultError, match="plain text"):
        alice.hold(case_id, "looks fine\u202etxt.exe")


def test_T34_release_then_rm_works(held_case):
    alice, bob, case_id, ids, _ = held_case
    released = alice.release_hold(case_id)
    assert released == {"case_id": case_id, "hold": False, "reason": REASON}
    assert alice.list_cases()[0]["hold"] is None
    bob.rm(case_id, ids[0])
    assert [f["file_id"] for f in alice.ls(case_id)] == [ids[1]]
    events = [e["action"] for e in alice.audit(case_id)]
    assert events.index("case:hold:placed") < events.index("case:hold:released")


def test_T34_gc_keeps_every_blob_of_a_held_case(lawyer, tmp_path, app_settings):
    """Superseded and tombstoned versions included; a real orphan beside them still goes."""
    from sqlalchemy.orm import Session

    from vault.services.gc import collect_garbage
    from vault.storage import FilesystemBlobStore

    alice = lawyer("alice")
    case_id = alice.create_case("R v Okoro")
    doc = tmp_path / "plea.txt"
    doc.write_bytes(b"draft")
    (v1,) = alice.put(case_id, [doc])
    doc.write_bytes(b"final")
    alice.put(case_id, [doc], file_id=v1["file_id"])
    gone = tmp_path / "withdrawn.txt"
    gone.write_bytes(b"withdrawn statement")
    (w,) = alice.put(case_id, [gone])
    alice.rm(case_id, w["file_id"])  # deleted before the hold: its blob must stay too
    alice.hold(case_id, REASON)

    url = app_settings.resolved_database_url()
    keys = {k for (k,) in _sql(url, "SELECT blob_key FROM file_versions WHERE case_id = :c",
                               c=case_id)}
    assert len(keys) == 3
    store = FilesystemBlobStore(app_settings.resolved_blob_dir())
    orphan_key = store.put([b"abandoned bytes"]).key
    later = datetime.now(UTC) + timedelta(days=30)
    engine = sa.create_engine(url)
    try:
        with Session(engine) as db:
            report = collect_garbage(db, store, app_settings, now=later)
    finally:
        engine.dispose()
    present = {e.key for e in store.iter_blobs()}
    assert keys <= present
    assert orphan_key not in present and report.blobs_removed >= 1
    out = tmp_path / "out.txt"
    alice.get(case_id, v1["file_id"], output=out, version=1)
    assert out.read_bytes() == b"draft"


def test_T34_server_applying_a_tombstone_signed_under_hold_is_caught(held_case, database_url):
    """A careless server (no 409) applies Bob's tombstone signed while the hold stood."""
    alice, bob, case_id, ids, _ = held_case
    tomb = _tombstone(bob, case_id, ids[0], _head_seq(bob, case_id))
    _sql(database_url, "UPDATE files SET deleted_at = :t, deleted_by = :u, tombstone_body = :b,"
         " tombstone_sig = :s WHERE case_id = :c AND file_id = :f",
         t=datetime.now(UTC), u=bob.identity().user_id, b=tomb["body"], s=tomb["sig"],
         c=case_id, f=ids[0])
    _sql(database_url, "UPDATE file_versions SET deleted = :d WHERE case_id = :c "
         "AND file_id = :f", d=True, c=case_id, f=ids[0])
    with pytest.raises(IntegrityError, match=f"deletion of file {ids[0]}") as caught:
        alice.ls(case_id)
    assert exit_code(caught.value) == EXIT_INTEGRITY


def test_T34_server_erasing_a_held_file_is_caught(held_case, database_url, app_settings):
    """The operator deletes the rows and the blob from its disk: the client knew the file."""
    alice, _, case_id, ids, _ = held_case
    ((key,),) = _sql(database_url, "SELECT blob_key FROM file_versions WHERE case_id = :c AND "
                     "file_id = :f", c=case_id, f=ids[0])
    _sql(database_url, "DELETE FROM file_versions WHERE case_id = :c AND file_id = :f",
         c=case_id, f=ids[0])
    _sql(database_url, "DELETE FROM files WHERE case_id = :c AND file_id = :f",
         c=case_id, f=ids[0])
    from vault.storage import FilesystemBlobStore

    FilesystemBlobStore(app_settings.resolved_blob_dir()).delete(key)
    with pytest.raises(IntegrityError, match=f"{ids[0]}.*hiding a file") as caught:
        alice.ls(case_id)
    assert exit_code(caught.value) == EXIT_INTEGRITY


def test_T34_deletion_logged_under_hold_is_caught_by_audit(held_case, app_settings, clock):
    """Bob signed a tombstone before the hold; the server withheld it and applies it once the
    case is held, logging the deletion with its own recorder. The tombstone is valid as a
    record, so only the order of the leaves proves the hold was ignored."""
    from sqlalchemy.orm import Session

    from vault.protocol.events import Action
    from vault.services.case_access import signed_text
    from vault.services.events import record_event

    alice, bob, case_id, ids, before = held_case
    tomb = _tombstone(bob, case_id, ids[0], before)
    engine = sa.create_engine(app_settings.resolved_database_url())
    try:
        with Session(engine) as db:
            db.execute(sa.text(
                "UPDATE files SET deleted_at = :t, deleted_by = :u, tombstone_body = :b, "
                "tombstone_sig = :s WHERE case_id = :c AND file_id = :f"),
                {"t": clock.now, "u": bob.identity().user_id, "b": tomb["body"],
                 "s": tomb["sig"], "c": case_id, "f": ids[0]})
            db.execute(sa.text("UPDATE file_versions SET deleted = :d WHERE case_id = :c AND "
                               "file_id = :f"), {"d": True, "c": case_id, "f": ids[0]})
            record_event(db, action=Action.FILE_DELETED, actor_id=bob.identity().user_id,
                         case_id=case_id, file_id=ids[0], signed_record=signed_text(tomb),
                         now=clock.now)
            db.commit()
    finally:
        engine.dispose()

    assert [f["file_id"] for f in alice.ls(case_id)] == [ids[1]]  # the tombstone itself is valid
    with pytest.raises(IntegrityError, match="ignored the hold") as caught:
        alice.audit(case_id)
    assert exit_code(caught.value) == EXIT_INTEGRITY


def test_T34_deletion_before_the_hold_is_no_alarm(lawyer, tmp_path):
    alice = lawyer("alice")
    case_id = alice.create_case("R v Early")
    doc = tmp_path / "a.txt"
    doc.write_bytes(b"a")
    (put,) = alice.put(case_id, [doc])
    alice.rm(case_id, put["file_id"])
    alice.hold(case_id, REASON)
    actions = [e["action"] for e in alice.audit(case_id)]
    assert actions.index("file:file:deleted") < actions.index("case:hold:placed")
