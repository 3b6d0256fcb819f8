"""Receipts: each reply to a user's own action names the log leaf of its event, and that leaf is
the event (actor, action, case, file) the action recorded, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets

import pytest
from casekit import CaseKit, CaseState

from vault.protocol import logentry
from vault.protocol.encoding import b64d, b64e
from vault.protocol.ids import new_id


@pytest.fixture
def setup(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    return kit, alice, bob


def _entry(client, user, index: int) -> dict:
    reply = client.get("/v1/log/entries", params={"start": index, "end": index + 1},
                       headers=user.headers)
    assert reply.status_code == 200, reply.text
    (row,) = reply.json()["entries"]
    assert row["index"] == index
    # A format-2 leaf: the event is the body its skeleton names by hash.
    body = logentry.check_body(logentry.parse_skeleton(b64d(row["entry"])), b64d(row["body"]))
    return json.loads(b64d(row["body"])) | {"actor_id": body.actor_id}


def test_every_own_action_names_its_leaf(client, setup):
    kit, alice, bob = setup
    case = kit.create_case(alice)
    added = kit.add(alice, case, bob, "editor")
    assert added.status_code == 201
    entry = _entry(client, alice, added.json()["log_index"])
    assert (entry["action"], entry["actor_id"], entry["case_id"]) == (
        "case:member:added", alice.user_id, case.case_id)
    assert entry["detail"]["subject"] == bob.user_id

    file_id, done = kit.upload(alice, case, b"privileged material")
    assert done.status_code == 201, done.text
    entry = _entry(client, alice, done.json()["log_index"])
    assert (entry["action"], entry["actor_id"], entry["file_id"]) == (
        "file:version:uploaded", alice.user_id, file_id)

    got = kit.download(bob, case, file_id)
    assert got.status_code == 200
    entry = _entry(client, bob, int(got.headers["X-CaseVault-Log-Index"]))
    assert (entry["action"], entry["actor_id"], entry["file_id"]) == (
        "file:version:downloaded", bob.user_id, file_id)

    gone = client.post(f"/v1/cases/{case.case_id}/files/{file_id}/tombstone",
                       json={"tombstone": kit.tombstone(alice, case, file_id)},
                       headers=alice.headers)
    assert gone.status_code == 200, gone.text
    entry = _entry(client, alice, gone.json()["log_index"])
    assert (entry["action"], entry["file_id"]) == ("file:file:deleted", file_id)

    removed = kit.remove(alice, case, bob)
    assert removed.status_code == 201
    entry = _entry(client, alice, removed.json()["log_index"])
    assert (entry["action"], entry["detail"]["subject"]) == ("case:member:removed", bob.user_id)


def test_case_creation_reply_names_its_leaf(client, setup):
    kit, alice, _ = setup
    case = CaseState(case_id=new_id(), seq=-1)
    genesis = kit.entry(alice, case, "create", alice, "owner", seq=0, generation=0)
    reply = client.post("/v1/cases", headers=alice.headers, json={
        "case_id": case.case_id, "encrypted_info": b64e(secrets.token_bytes(80)),
        "entry": genesis, "grant": kit.grant(alice, case, alice, generation=0)})
    assert reply.status_code == 201, reply.text
    entry = _entry(client, alice, reply.json()["log_index"])
    assert (entry["action"], entry["actor_id"], entry["case_id"]) == (
        "case:case:created", alice.user_id, case.case_id)


def test_share_checkpoint_must_be_signed_by_this_log(client, setup):
    kit, alice, bob = setup
    case = kit.create_case(alice)
    note = client.get("/v1/log/checkpoint", headers=alice.headers).json()["checkpoint"]
    forged = note.replace("\n", "\n1", 1)  # another tree size under the same signature
    entry = kit.entry(alice, case, "add", bob, "viewer")
    grants = [kit.grant(alice, case, bob)]
    refused = client.post(f"/v1/cases/{case.case_id}/membership",
                          json={"entry": entry, "grants": grants, "checkpoint": forged},
                          headers=alice.headers)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_request"
    accepted = client.post(f"/v1/cases/{case.case_id}/membership",
                           json={"entry": entry, "grants": grants, "checkpoint": note},
                           headers=alice.headers)
    assert accepted.status_code == 201, accepted.text
    logged = _entry(client, alice, accepted.json()["log_index"])
    assert logged["detail"]["sharer_checkpoint"] == note
