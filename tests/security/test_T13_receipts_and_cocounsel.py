"""T13 continued: receipts of the lawyer's own actions, co-counsel checkpoint comparison, and a
server that refuses to prove what it signed.

Real client (`client.vault`) against a real uvicorn; the operator edits the real database or
makes the real server misbehave. Every lie ends in an IntegrityError and an evidence file.
"""

from __future__ import annotations

import json

import pytest
from attack_kit import forged_leaf, leaf_event, log_entries, rewrite_log

from client.auditlog import AuditLog, AuditVerificationError
from client.cases import CaseOps
from client.crypto.errors import IntegrityError
from vault.api.routes import cases as case_routes
from vault.errors import ServiceUnavailable
from vault.protocol import merkle
from vault.protocol.checkpoint import open_checkpoint
from vault.services import auditlog


def _receipts(vault) -> list[dict]:
    return json.loads((vault.keystore.home / "receipts.json").read_text())


def _evidence(vault) -> list[str]:
    return [p.read_text() for p in sorted((vault.keystore.home / "evidence").glob("*"))]


@pytest.fixture
def world(lawyer, tmp_path, app_settings):
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Okafor")
    doc = tmp_path / "statement.txt"
    doc.write_bytes(b"witness statement")
    (put,) = alice.put(case_id, [doc])
    return alice, bob, case_id, put["file_id"], tmp_path, app_settings.resolved_database_url()


def test_T13_own_actions_leave_receipts_that_reverify(world):
    alice, bob, case_id, file_id, tmp_path, _ = world
    alice.get(case_id, file_id, output=tmp_path / "copy.txt")
    alice.share(case_id, "bob", role="editor")
    alice.revoke(case_id, "bob")
    receipts = _receipts(alice)
    assert [r["action"] for r in receipts] == [
        "case:case:created", "file:version:uploaded", "file:version:downloaded",
        "case:member:added", "case:member:removed",
    ]
    assert {r["case_id"] for r in receipts} == {case_id}
    summary = alice.session.audit_log().verify_all()
    assert summary["receipts"] == 5 and summary["log_size"] > receipts[-1]["index"]
    # Each receipt is the leaf the server logged for that action.
    stored = log_entries(world[5])
    for r in receipts:
        event = leaf_event(stored[r["index"]])
        assert event["action"] == r["action"]
        assert event["actor_id"] == alice.me.user_id


def test_T13_server_pointing_a_receipt_elsewhere_is_caught(world):
    alice, _, case_id, file_id, _, url = world
    # The server answers an upload with the index of some other event (here the creation).
    other = next(i for i, e in enumerate(log_entries(url))
                 if leaf_event(e)["action"] == "case:case:created")
    with pytest.raises(IntegrityError, match="does not match action"):
        CaseOps(alice.session).receipt(other, expect={"action": "file:version:uploaded",
                                              "case_id": case_id, "file_id": file_id})
    assert any("does not match action" in text for text in _evidence(alice))
    with pytest.raises(IntegrityError, match="no log index"):
        CaseOps(alice.session).receipt(None, expect={"action": "file:version:uploaded"})


def test_T13_rewritten_own_action_fails_verify(world):
    alice, bob, case_id, _, _, url = world
    alice.session.audit_log().verify_all()
    entries = log_entries(url)
    index = _receipts(alice)[1]["index"]
    entries[index] = forged_leaf(entries[index], b"file:version:uploaded",
                                 b"file:version:listed__")
    rewrite_log(url, entries)
    bob.create_case("R v Later")  # the log moves on past Alice's pin
    with pytest.raises(AuditVerificationError, match="not an extension") as caught:
        alice.session.audit_log().verify_all()
    assert caught.value.evidence.exists()
    assert "pinned checkpoint" in caught.value.evidence.read_text()


def test_T13_share_carries_checkpoint_and_new_member_compares_it(world):
    alice, bob, case_id, _, _, url = world
    alice.share(case_id, "bob", role="viewer")
    # The checkpoint logged with the share is one Alice had verified just before sharing.
    ((index, added),) = [(i, leaf_event(e)) for i, e in enumerate(log_entries(url))
                         if leaf_event(e)["action"] == "case:member:added"]
    shared = open_checkpoint(added["detail"]["sharer_checkpoint"],
                             AuditLog(alice.keystore.home, None).verifier())
    assert 0 < shared.size <= index
    assert added["detail"]["subject"] == bob.me.user_id
    assert [f["name"] for f in bob.ls(case_id)] == ["statement.txt"]
    compared = json.loads((bob.keystore.home / "shared_checkpoints.json").read_text())
    assert compared[case_id]["outcome"] == "consistent"
    assert not (bob.keystore.home / "evidence").exists()


def test_T13_fork_caught_by_co_counsel_checkpoint(world):
    """Bob has never seen this log. The operator rewrites history after Alice shared; Bob's
    first view looks whole on its own, but Alice's logged checkpoint exposes the fork."""
    alice, bob, case_id, _, _, url = world
    alice.share(case_id, "bob", role="editor")
    entries = log_entries(url)
    (shared_text,) = [leaf_event(e)["detail"]["sharer_checkpoint"] for e in entries
                      if leaf_event(e)["action"] == "case:member:added"]
    upload = next(i for i, e in enumerate(entries)
                  if leaf_event(e)["action"] == "file:version:uploaded")
    entries[upload] = forged_leaf(entries[upload], b"file:version:uploaded",
                                  b"file:version:listed__")
    rewrite_log(url, entries)
    with pytest.raises(IntegrityError, match="audit log of case"):
        bob.ls(case_id)
    (evidence,) = _evidence(bob)
    bob_text = AuditLog(bob.keystore.home, None).pinned()[1]
    assert shared_text in evidence and bob_text in evidence
    # Portable proof: two notes validly signed by the log key that are not one history.
    key = AuditLog(bob.keystore.home, None).verifier()
    a, b = open_checkpoint(shared_text, key), open_checkpoint(bob_text, key)
    assert a.size < b.size
    # The history Bob was shown does not contain the tree Alice signed off on.
    shown = [e[0] for e in log_entries(url)]
    assert merkle.root_of_entries(shown[: a.size]) != a.root_hash
    assert merkle.root_of_entries(shown[: b.size]) == b.root_hash


def test_T13_server_stripping_the_sharer_checkpoint_is_caught(world, monkeypatch):
    alice, _, case_id, _, _, _ = world
    monkeypatch.setattr(case_routes, "checked_checkpoint", lambda request, text: None)
    with pytest.raises(IntegrityError, match="sharer_checkpoint"):
        alice.share(case_id, "bob", role="editor")


def test_T13_forged_checkpoint_in_share_is_refused(world, lawyer):
    alice, _, case_id, _, _, _ = world
    ops = CaseOps(alice.session)
    ctx = ops.load(case_id)
    record = alice.trust_store.for_sharing("bob", None)[0]
    from client import crypto

    grant = crypto.seal_grant(case_key=ctx.key, case_id=case_id, generation=ctx.generation,
                              member=record, granter=alice.identity())
    forged = AuditLog(alice.keystore.home, None).pinned()[1].replace("\n\n", "\n\nX", 1)
    from client.api import InvalidRequest

    with pytest.raises(InvalidRequest):
        ops._append(ctx, action="add", subject=record.user_id,
                    subject_fp=record.fingerprint_hex, role="viewer",
                    generation=ctx.generation, key_link=b"", grants=[grant],
                    checkpoint=forged)


def test_T13_refused_proof_is_saved_as_evidence(world, monkeypatch):
    alice, bob, case_id, _, _, _ = world
    alice.audit(case_id)  # pinned
    bob.create_case("R v Elsewhere")  # the log grows, so Alice needs a consistency proof

    def refuse(*args, **kwargs):
        raise ServiceUnavailable("proofs are unavailable")

    monkeypatch.setattr(auditlog, "consistency_proof", refuse)
    with pytest.raises(IntegrityError, match="did not serve a consistency proof"):
        alice.audit(case_id)
    evidence = _evidence(alice)
    assert evidence and "GET /v1/log/proof/consistency" in evidence[0]


def test_T13_server_unreachable_mid_verification_shows_nothing_and_says_unreachable(
        world, monkeypatch):
    """A crash is not a forgery: the lawyer is told the server went away, nothing unverified
    is shown, and the moment is still written down as evidence."""
    from client.api import Api, Unreachable

    alice, bob, case_id, _, _, _ = world
    alice.audit(case_id)  # pinned
    bob.create_case("R v Elsewhere")  # the log grows, so Alice needs a consistency proof
    real_get = Api.get

    def drop_on_proof(self, path, **params):
        if path.startswith("/v1/log/proof/consistency"):
            raise Unreachable("the server is unreachable", code="unreachable")
        return real_get(self, path, **params)

    monkeypatch.setattr(Api, "get", drop_on_proof)
    with pytest.raises(Unreachable):
        alice.audit(case_id)
    evidence = _evidence(alice)
    assert evidence and "unreachable" in evidence[-1]
    assert "GET /v1/log/proof/consistency" in evidence[-1]
