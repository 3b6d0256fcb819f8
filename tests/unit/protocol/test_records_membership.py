"""Membership log replay and the authority checks on grants, manifests and tombstones.

Each attack is what a lying server (or a member overstepping) could serve; each must be refused.
"""

from __future__ import annotations

import os

import nacl.signing
import pytest

from vault.protocol import membership as m
from vault.protocol import records as r
from vault.protocol.encoding import b64d, b64e, canonical_json, parse_canonical, signing_input
from vault.protocol.ids import new_id


class User:
    def __init__(self, name):
        self.sk = nacl.signing.SigningKey.generate()
        body = r.identity_body(
            user_id=new_id(),
            username=name,
            sign_pk=bytes(self.sk.verify_key),
            kem_pk=os.urandom(r.KEM_PK_BYTES),
            created_at=1,
        )
        self.record = r.verify_identity_record(r.sign_record(r.LABEL_IDENTITY, body, self.sk))
        self.id = self.record.user_id
        self.fp = self.record.fingerprint_hex


class Log:
    def __init__(self, owner):
        self.case_id = new_id()
        self.entries = []
        self.users = {owner.id: owner.record}
        self.generation = 0
        self.append(owner, "create", owner, "owner")

    def append(self, author, action, subject, role, *, link=None, generation=None, **over):
        if action == "remove":
            self.generation += 1
        self.users[subject.id] = subject.record
        prev = (
            r.open_envelope(r.LABEL_MEMBERSHIP, self.entries[-1]).record_hash
            if self.entries
            else r.ZERO_HASH
        )
        body = m.membership_entry_body(
            case_id=self.case_id,
            seq=len(self.entries),
            prev_hash=prev,
            action=action,
            subject=subject.id,
            subject_fp=subject.fp,
            role=role,
            author=author.id,
            time=100 + len(self.entries),
            generation=self.generation if generation is None else generation,
            key_link=(os.urandom(72) if action == "remove" else b"") if link is None else link,
        )
        body.update(over)
        self.entries.append(r.sign_record(r.LABEL_MEMBERSHIP, body, author.sk))
        return self

    def replay(self):
        return m.replay_membership(self.entries, self.users)


@pytest.fixture
def people():
    return User("alice"), User("bob"), User("carol")


def test_replay_builds_roles_and_generations(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "editor").append(alice, "add", carol, "viewer")
    log.append(alice, "role", bob, "owner").append(bob, "remove", carol, "viewer")
    state = log.replay()
    assert {u: mm.role for u, mm in state.members.items()} == {alice.id: "owner", bob.id: "owner"}
    assert state.generation == 1 and state.next_seq == 5
    assert state.may_upload(bob.id) and not state.may_upload(carol.id)
    assert state.at(2).members[carol.id].role == "viewer"


def _tamper(signed, **changes):
    body = parse_canonical(b64d(signed["body"]))
    body.update(changes)
    return {"body": b64e(canonical_json(body)), "sig": signed["sig"]}


def test_tampered_entry_is_refused(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "viewer")
    # The server upgrades bob to owner in the stored entry: the signature no longer matches.
    log.entries[1] = _tamper(log.entries[1], role="owner")
    with pytest.raises(r.RecordError, match="signature"):
        log.replay()


def test_entry_by_non_owner_is_refused(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "editor").append(bob, "add", carol, "owner")
    with pytest.raises(r.RecordError, match="only an owner"):
        log.replay()


def test_broken_chain_gap_and_reorder_are_refused(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "viewer").append(alice, "add", carol, "viewer")
    with pytest.raises(r.RecordError, match="gap"):
        m.replay_membership([log.entries[0], log.entries[2]], log.users)
    with pytest.raises(r.RecordError, match="gap"):
        m.replay_membership([log.entries[0], log.entries[2], log.entries[1]], log.users)
    # A validly signed entry whose prev_hash points elsewhere (a fork) breaks the chain.
    fork = Log(alice)
    fork.case_id = log.case_id
    fork.entries = [log.entries[0]]
    fork.append(alice, "add", carol, "viewer", prev_hash="1" * 64)
    with pytest.raises(r.RecordError, match="chain"):
        fork.replay()


def test_create_must_be_first_and_only_first(people):
    alice, bob, _ = people
    log = Log(alice)
    log.append(alice, "create", alice, "owner")
    with pytest.raises(r.RecordError):
        log.replay()
    with pytest.raises(r.RecordError):
        m.replay_membership([], log.users)
    bad = Log(alice)
    bad.entries = []
    bad.append(alice, "add", bob, "owner")
    with pytest.raises(r.RecordError, match="create"):
        bad.replay()


def test_last_owner_cannot_leave_or_be_demoted(people):
    alice, bob, _ = people
    with pytest.raises(r.RecordError, match="owner"):
        Log(alice).append(alice, "remove", alice, "owner").replay()
    with pytest.raises(r.RecordError, match="owner"):
        Log(alice).append(alice, "role", alice, "viewer").replay()


def test_subject_key_must_match_pinned_identity(people):
    alice, bob, _ = people
    log = Log(alice).append(alice, "add", bob, "viewer", subject_fp="f" * 64)
    with pytest.raises(r.RecordError, match="wrong key"):
        log.replay()


def test_swapped_author_identity_is_refused(people):
    alice, bob, _ = people
    log = Log(alice).append(alice, "add", bob, "viewer")
    # The server serves another key for alice, re-signing the log with it.
    impostor = User("alice")
    impostor.record = r.verify_identity_record(
        r.sign_record(
            r.LABEL_IDENTITY,
            {**parse_canonical(b64d(impostor.record.signed["body"])), "user_id": alice.id},
            impostor.sk,
        )
    )
    users = {**log.users, alice.id: impostor.record}
    with pytest.raises(r.RecordError):
        m.replay_membership(log.entries, users)


def test_generation_and_key_link_rules(people):
    alice, bob, _ = people
    with pytest.raises(r.RecordError, match="generation"):
        Log(alice).append(alice, "add", bob, "viewer", generation=1).replay()
    with pytest.raises(r.RecordError, match="key link"):
        Log(alice).append(alice, "add", bob, "viewer", link=b"x").replay()
    log = Log(alice).append(alice, "add", bob, "viewer")
    with pytest.raises(r.RecordError, match="key link"):
        log.append(alice, "remove", bob, "viewer", link=b"").replay()


def test_verify_append_matches_replay(people):
    alice, bob, carol = people
    log = Log(alice)
    state = log.replay()
    log.append(alice, "add", bob, "viewer")
    assert m.verify_membership_append(state, log.entries[-1], log.users).next_seq == 2
    state = log.replay()
    # bob is only a viewer: his attempt to add carol is refused on the append path too.
    log.append(bob, "add", carol, "viewer")
    with pytest.raises(r.RecordError, match="only an owner"):
        m.verify_membership_append(state, log.entries[-1], log.users)


# ---------------------------------------------------------------- grants


def _grant(granter, member, case_id, generation=0, **over):
    body = r.grant_body(
        case_id=case_id,
        generation=generation,
        member=member.id,
        member_fp=member.fp,
        sealed_key=os.urandom(1168),
        granter=granter.id,
        time=7,
    )
    body.update(over)
    return r.sign_record(r.LABEL_GRANT, body, granter.sk)


def test_grant_by_owner_verifies(people):
    alice, bob, _ = people
    log = Log(alice).append(alice, "add", bob, "viewer")
    g = m.verify_grant(_grant(alice, bob, log.case_id), log.replay(), log.users)
    assert g.member == bob.id


def test_grant_by_non_owner_is_refused(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "editor").append(alice, "add", carol, "viewer")
    with pytest.raises(r.RecordError, match="owner"):
        m.verify_grant(_grant(bob, carol, log.case_id), log.replay(), log.users)


def test_forged_grant_is_refused(people):
    alice, bob, _ = people
    log = Log(alice).append(alice, "add", bob, "viewer")
    # The server swaps the sealed key (say, one sealed to a key it controls) in alice's grant.
    forged = _tamper(_grant(alice, bob, log.case_id), sealed_key=b64e(os.urandom(1168)))
    with pytest.raises(r.RecordError, match="signature"):
        m.verify_grant(forged, log.replay(), log.users)
    # Or signs one itself with a key of its own under alice's name.
    mallory = User("mallory")
    mallory.id = alice.id
    with pytest.raises(r.RecordError, match="signature"):
        m.verify_grant(_grant(mallory, bob, log.case_id), log.replay(), log.users)


def test_grant_to_non_member_wrong_generation_or_case_is_refused(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "viewer")
    state = log.replay()
    with pytest.raises(r.RecordError):
        m.verify_grant(
            _grant(alice, carol, log.case_id), state, {**log.users, carol.id: carol.record}
        )
    with pytest.raises(r.RecordError):
        m.verify_grant(_grant(alice, bob, log.case_id, generation=1), state, log.users)
    with pytest.raises(r.RecordError):
        m.verify_grant(_grant(alice, bob, new_id()), state, log.users)
    with pytest.raises(r.RecordError):
        m.verify_grant(_grant(alice, bob, log.case_id, member_fp="e" * 64), state, log.users)


def test_removed_member_gets_no_grant_for_new_generation(people):
    alice, bob, _ = people
    log = Log(alice).append(alice, "add", bob, "viewer").append(alice, "remove", bob, "viewer")
    state = log.replay()
    assert m.verify_grant(_grant(alice, bob, log.case_id, 0), state, log.users)
    with pytest.raises(r.RecordError):
        m.verify_grant(_grant(alice, bob, log.case_id, 1), state, log.users)


# ---------------------------------------------------------------- manifests and tombstones


def _manifest(uploader, case_id, seq=0, generation=0, file_id=None, **over):
    body = r.manifest_body(
        case_id=case_id,
        file_id=file_id or new_id(),
        version=1,
        generation=generation,
        membership_seq=seq,
        blob_size=100,
        blob_sha256="a" * 64,
        meta_hash="b" * 64,
        wrapped_key_hash="c" * 64,
        uploader=uploader.id,
        time=9,
    )
    body.update(over)
    return r.sign_record(r.LABEL_MANIFEST, body, uploader.sk)


def test_manifest_checks(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", bob, "editor").append(alice, "add", carol, "viewer")
    state = log.replay()
    fid = new_id()
    ok = m.verify_manifest(
        _manifest(bob, log.case_id, seq=2, file_id=fid),
        state,
        log.users,
        case_id=log.case_id,
        file_id=fid,
        version=1,
    )
    assert ok.uploader == bob.id
    with pytest.raises(r.RecordError, match="upload rights"):
        m.verify_manifest(_manifest(carol, log.case_id, seq=2), state, log.users)
    with pytest.raises(r.RecordError, match="not a member"):
        m.verify_manifest(_manifest(bob, log.case_id, seq=0), state, log.users)
    with pytest.raises(r.RecordError, match="signature"):
        m.verify_manifest(
            _tamper(_manifest(bob, log.case_id, seq=2), blob_sha256="d" * 64), state, log.users
        )
    with pytest.raises(r.RecordError, match="generation"):
        m.verify_manifest(_manifest(bob, log.case_id, seq=2, generation=1), state, log.users)
    with pytest.raises(r.RecordError, match="file_id"):
        m.verify_manifest(_manifest(bob, log.case_id, seq=2), state, log.users, file_id=fid)
    with pytest.raises(r.RecordError, match="position"):
        m.verify_manifest(_manifest(bob, log.case_id, seq=9), state, log.users)
    outsider = User("mallory")
    with pytest.raises(r.RecordError):
        m.verify_manifest(
            _manifest(outsider, log.case_id, seq=2),
            state,
            {**log.users, outsider.id: outsider.record},
        )


def test_tombstone_needs_delete_rights(people):
    alice, bob, carol = people
    log = Log(alice).append(alice, "add", carol, "viewer")
    state = log.replay()

    def tomb(user):
        body = r.tombstone_body(
            case_id=log.case_id, file_id=new_id(), membership_seq=1, deleter=user.id, time=3
        )
        return r.sign_record(r.LABEL_TOMBSTONE, body, user.sk)

    assert m.verify_tombstone(tomb(alice), state, log.users).deleter == alice.id
    with pytest.raises(r.RecordError):
        m.verify_tombstone(tomb(carol), state, log.users)


def test_record_hash_binds_signature(people):
    alice, *_ = people
    log = Log(alice)
    env = r.open_envelope(r.LABEL_MEMBERSHIP, log.entries[0])
    body = env.body
    assert env.record_hash != r.sha256_hex(signing_input(r.LABEL_MEMBERSHIP, body))
