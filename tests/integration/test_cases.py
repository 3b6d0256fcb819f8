"""Cases, the membership log and key grants through the API, with real signed records."""

from __future__ import annotations

import json
import secrets

import nacl.signing
import sqlalchemy as sa
from casekit import CaseKit, CaseState, fingerprint

from vault.protocol import logentry
from vault.protocol.encoding import b64d
from vault.protocol.ids import new_id
from vault.protocol.membership import replay_membership
from vault.protocol.records import parse_grant, verify_identity_record


def _events(app_settings, case_id):
    engine = sa.create_engine(app_settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select action, actor_id, source, result, signed_record, detail "
                "from audit_events where case_id = :c order by id"
            ),
            {"c": case_id},
        ).all()
    engine.dispose()
    return rows


def test_create_list_and_get(client, make_user, app_settings):
    kit = CaseKit(client)
    alice = make_user("alice")
    case = kit.create_case(alice)
    listed = client.get("/v1/cases", headers=alice.headers).json()["cases"]
    assert [(c["case_id"], c["role"], c["generation"]) for c in listed] == [
        (case.case_id, "owner", 0)
    ]
    detail = client.get(f"/v1/cases/{case.case_id}", headers=alice.headers).json()
    assert detail["members"] == [
        {
            "user_id": alice.user_id,
            "username": "alice",
            "role": "owner",
            "fingerprint": fingerprint(alice),
        }
    ]
    events = _events(app_settings, case.case_id)
    assert [e.action for e in events] == ["case:case:created", "case:grant:added"]
    created = events[0]
    assert created.actor_id == alice.user_id and created.result == "success" and created.source
    # The leaf carries the client-signed genesis entry, byte for byte.
    log = client.get(f"/v1/cases/{case.case_id}/membership", headers=alice.headers).json()
    assert json.loads(created.signed_record) == log["entries"][0]


def test_duplicate_case_id_is_a_conflict(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    again = CaseState(case_id=case.case_id, seq=-1)
    r = client.post(
        "/v1/cases",
        json={
            "case_id": case.case_id,
            "encrypted_info": "AAAA",
            "entry": kit.entry(bob, again, "create", bob, "owner", seq=0, generation=0),
            "grant": kit.grant(bob, again, bob, generation=0),
        },
        headers=bob.headers,
    )
    assert r.status_code == 409 and r.json()["code"] == "case_exists"
    # Bob did not become a member of Alice's case.
    assert client.get(f"/v1/cases/{case.case_id}", headers=bob.headers).status_code == 404


def test_genesis_signed_by_another_key_is_refused(client, make_user):
    kit = CaseKit(client)
    alice = make_user("alice")
    forged_key = nacl.signing.SigningKey.generate()
    case = CaseState(case_id=new_id(), seq=-1)
    r = client.post(
        "/v1/cases",
        json={
            "case_id": case.case_id,
            "encrypted_info": "AAAA",
            "entry": kit.entry(
                alice, case, "create", alice, "owner", seq=0, generation=0, key=forged_key
            ),
            "grant": kit.grant(alice, case, alice, generation=0),
        },
        headers=alice.headers,
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"
    assert client.get("/v1/cases", headers=alice.headers).json()["cases"] == []


def test_case_cannot_be_created_in_someone_elses_name(client, make_user):
    kit = CaseKit(client)
    alice, mallory = make_user("alice"), make_user("mallory")
    case = CaseState(case_id=new_id(), seq=-1)
    # A genuine genesis entry by Alice, replayed by Mallory.
    body = {
        "case_id": case.case_id,
        "encrypted_info": "AAAA",
        "entry": kit.entry(alice, case, "create", alice, "owner", seq=0, generation=0),
        "grant": kit.grant(alice, case, alice, generation=0),
    }
    r = client.post("/v1/cases", json=body, headers=mallory.headers)
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"


def test_add_member_with_grant_then_member_sees_case(client, make_user, app_settings):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert client.get(f"/v1/cases/{case.case_id}", headers=bob.headers).status_code == 404
    r = kit.add(alice, case, bob, "viewer")
    assert r.status_code == 201
    reply = r.json()
    assert set(reply) == {"seq", "generation", "log_index"}
    assert (reply["seq"], reply["generation"]) == (1, 0)
    # The receipt names the leaf of this very event (its number depends on how many account
    # events came before, so the leaf's content is checked rather than a fixed index).
    leaf = client.get("/v1/log/entries", headers=alice.headers,
                      params={"start": reply["log_index"], "end": reply["log_index"] + 1})
    assert leaf.status_code == 200, leaf.text
    (row,) = leaf.json()["entries"]
    # A format-2 leaf: the event is the body its skeleton names, tagged as a membership change.
    skeleton = logentry.parse_skeleton(b64d(row["entry"]))
    logentry.check_body(skeleton, b64d(row["body"]))
    assert skeleton.case_tag == logentry.case_tag(case.case_id)
    logged = json.loads(b64d(row["body"]))
    assert (logged["action"], logged["actor_id"], logged["case_id"]) == (
        "case:member:added", alice.user_id, case.case_id)
    assert logged["detail"]["subject"] == bob.user_id
    listed = client.get("/v1/cases", headers=bob.headers).json()["cases"]
    assert [(c["case_id"], c["role"]) for c in listed] == [(case.case_id, "viewer")]
    grants = client.get(f"/v1/cases/{case.case_id}/grants", headers=bob.headers).json()["grants"]
    assert [parse_grant(g).member for g in grants] == [bob.user_id]
    actions = [e.action for e in _events(app_settings, case.case_id)]
    assert actions[-2:] == ["case:member:added", "case:grant:added"]


def test_client_can_replay_the_log_the_server_returns(client, make_user):
    kit = CaseKit(client)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    assert kit.add(alice, case, carol, "viewer").status_code == 201
    assert kit.change_role(alice, case, carol, "editor").status_code == 201
    assert kit.remove(alice, case, bob).status_code == 201
    log = client.get(f"/v1/cases/{case.case_id}/membership", headers=carol.headers).json()
    ids = {
        u.user_id: verify_identity_record(u.registration["identity"]) for u in (alice, bob, carol)
    }
    state = replay_membership(log["entries"], ids)
    assert {m: s.role for m, s in state.members.items()} == {
        alice.user_id: "owner",
        carol.user_id: "editor",
    }
    assert state.generation == 1
    assert log["usernames"] == {alice.user_id: "alice", bob.user_id: "bob", carol.user_id: "carol"}


def test_only_owners_change_membership(client, make_user):
    kit = CaseKit(client)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    # Bob, an editor, signs an add entry himself.
    r = kit.add(bob, case, carol, "editor")
    assert r.status_code == 403 and r.json()["code"] == "insufficient_role"
    # Carol, not a member, is told the case does not exist.
    r = kit.add(carol, case, carol, "owner")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_entry_signed_by_owner_but_posted_by_another_owner_is_refused(client, make_user):
    kit = CaseKit(client)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "owner").status_code == 201
    entry = kit.entry(alice, case, "add", carol, "viewer")
    r = kit.post_entry(bob, case, entry, [kit.grant(alice, case, carol)])
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"


def test_forged_and_broken_entries_are_refused(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    grant = kit.grant(alice, case, bob)
    attempts = {
        "wrong key": kit.entry(
            alice, case, "add", bob, "editor", key=nacl.signing.SigningKey.generate()
        ),
        "broken chain": kit.entry(alice, case, "add", bob, "editor", prev_hash="ab" * 32),
        "gap": kit.entry(alice, case, "add", bob, "editor", seq=case.seq + 2),
        "wrong subject key": kit.entry(alice, case, "add", bob, "editor", subject_fp="cd" * 32),
        "rewrite the genesis": kit.entry(alice, case, "add", bob, "editor", seq=0),
    }
    for name, entry in attempts.items():
        r = kit.post_entry(alice, case, entry, [grant])
        assert r.status_code in (400, 409), (name, r.text)
        assert r.json()["code"] in ("invalid_record", "membership_conflict"), name
    log = client.get(f"/v1/cases/{case.case_id}/membership", headers=alice.headers).json()
    assert len(log["entries"]) == 1


def test_add_needs_exactly_the_grant_for_the_new_member(client, make_user):
    kit = CaseKit(client)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    case = kit.create_case(alice)
    entry = kit.entry(alice, case, "add", bob, "editor")
    for grants in ([], [kit.grant(alice, case, carol)], [kit.grant(alice, case, bob)] * 2):
        r = kit.post_entry(alice, case, entry, grants)
        assert r.status_code == 400 and r.json()["code"] == "invalid_record"
    # A grant for an older or future generation is refused too.
    r = kit.post_entry(alice, case, entry, [kit.grant(alice, case, bob, generation=1)])
    assert r.status_code == 400
    assert kit.post_entry(alice, case, entry, [kit.grant(alice, case, bob)]).status_code == 201


def test_remove_rotates_the_key_for_the_remaining_members(client, make_user, app_settings):
    kit = CaseKit(client)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    assert kit.add(alice, case, carol, "viewer").status_code == 201
    # A removal without grants for everyone who stays is refused.
    entry = kit.entry(
        alice, case, "remove", bob, "editor", generation=1, key_link=secrets.token_bytes(72)
    )
    partial = [kit.grant(alice, case, alice, generation=1)]
    r = kit.post_entry(alice, case, entry, partial)
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"
    # A removal that grants the new key to the removed member is refused.
    leaky = partial + [kit.grant(alice, case, c, generation=1) for c in (carol, bob)]
    assert kit.post_entry(alice, case, entry, leaky).status_code == 400

    r = kit.remove(alice, case, bob)
    assert r.status_code == 201 and r.json()["generation"] == 1
    assert client.get(f"/v1/cases/{case.case_id}", headers=bob.headers).status_code == 404
    assert client.get("/v1/cases", headers=bob.headers).json()["cases"] == []
    carol_grants = client.get(f"/v1/cases/{case.case_id}/grants", headers=carol.headers).json()
    assert [parse_grant(g).generation for g in carol_grants["grants"]] == [0, 1]
    # The key link (generation 0 under generation 1) travels in the signed remove entry.
    log = client.get(f"/v1/cases/{case.case_id}/membership", headers=carol.headers).json()
    last = json.loads(b64d(log["entries"][-1]["body"]))
    assert last["action"] == "remove" and last["generation"] == 1 and last["key_link"]
    actions = [e.action for e in _events(app_settings, case.case_id)]
    assert "case:member:removed" in actions and "case:generation:added" in actions


def test_last_owner_cannot_leave_the_case_ownerless(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    r = kit.change_role(alice, case, alice, "editor")
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"


def test_role_change_takes_effect(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "viewer").status_code == 201
    r = kit.start_upload(bob, case, new_id(), 1, 10)
    assert r.status_code == 403
    assert kit.change_role(alice, case, bob, "editor").status_code == 201
    assert kit.start_upload(bob, case, new_id(), 1, 10).status_code == 201


def test_a_stale_entry_after_a_concurrent_change_is_a_conflict(client, make_user):
    kit = CaseKit(client)
    alice, bob, carol, dan = (make_user(n) for n in ("alice", "bob", "carol", "dan"))
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "owner").status_code == 201
    snapshot = CaseState(case.case_id, case.seq, case.head, case.generation)
    assert kit.add(alice, case, carol, "viewer").status_code == 201
    # Bob built his entry on the head before Alice's change.
    stale = kit.entry(bob, snapshot, "add", dan, "viewer")
    r = kit.post_entry(bob, case, stale, [kit.grant(bob, snapshot, dan)])
    assert r.status_code == 409 and r.json()["code"] == "membership_conflict"


def test_invalid_case_ids_and_bodies_are_client_errors(client, make_user):
    alice = make_user("alice")
    for bad in ("../etc", "A" * 32, "0" * 31):
        r = client.get(f"/v1/cases/{bad}", headers=alice.headers)
        assert r.status_code == 404
    r = client.post("/v1/cases", json={"case_id": "x"}, headers=alice.headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    r = client.post(
        "/v1/cases",
        json={"case_id": new_id(), "encrypted_info": "!!", "entry": {}, "grant": {}},
        headers=alice.headers,
    )
    assert r.status_code == 400
