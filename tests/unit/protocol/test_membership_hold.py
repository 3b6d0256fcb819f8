"""Legal hold and release entries of the membership log: who may sign them, when, in what shape;
the state they leave; the deletion they forbid; and their audit events."""

from __future__ import annotations

import pytest

from vault.protocol import logentry, membership
from vault.protocol import records as r
from vault.protocol.events import Action
from vault.protocol.ids import new_id
from vault.protocol.revocation_scan import scan_for_membership

REASON = "Preservation letter from the prosecution, 2026-11-30"


def _held_case(make_case, lawyers):
    alice, bob, carol = lawyers
    case = make_case(alice)
    case.append(alice, "add", bob, "editor")
    case.append(alice, "hold", alice, "owner", reason=REASON)
    return case


def _state(case):
    return membership.replay_membership(case.entries, case.identities)


def test_hold_and_release_are_tracked_in_every_snapshot(make_case, lawyers):
    alice, bob, carol = lawyers
    case = _held_case(make_case, lawyers)
    state = _state(case)
    assert state.hold == membership.Hold(REASON, 2, alice.id, 102)
    assert state.entries[2].reason == REASON
    case.append(alice, "add", carol, "viewer")
    assert _state(case).hold == state.hold  # later entries keep the hold
    case.append(alice, "release", alice, "owner")
    state = _state(case)
    assert state.hold is None and state.at(3).hold is not None and state.at(1).hold is None
    # A hold changes no member and no key generation.
    assert state.generation == 0 and set(state.members) == {alice.id, bob.id, carol.id}
    case.append(alice, "hold", alice, "owner", reason="second matter")
    assert _state(case).hold.seq == 5


def test_entries_other_than_hold_keep_their_exact_fields(make_case, lawyers):
    alice, bob, _ = lawyers
    case = make_case(alice)
    signed = case.append(alice, "add", bob, "viewer")
    body = r.open_envelope(r.LABEL_MEMBERSHIP, signed).body
    assert "reason" not in body
    assert set(body) == {"v", "case_id", "seq", "prev_hash", "action", "subject", "subject_fp",
                         "role", "author", "time", "generation", "key_link"}


def test_only_an_owner_may_hold(make_case, lawyers):
    alice, bob, _ = lawyers
    case = make_case(alice)
    case.append(alice, "add", bob, "editor")
    case.append(bob, "hold", bob, "owner", reason=REASON)
    with pytest.raises(r.RecordError, match="only an owner"):
        _state(case)


def test_an_editor_may_not_release_an_owners_hold(make_case, lawyers):
    alice, bob, _ = lawyers
    case = _held_case(make_case, lawyers)
    case.append(bob, "release", bob, "owner")
    with pytest.raises(r.RecordError, match="only an owner"):
        _state(case)


def test_hold_when_held_and_release_when_not_are_refused(make_case, lawyers):
    alice, _, _ = lawyers
    case = _held_case(make_case, lawyers)
    case.append(alice, "hold", alice, "owner", reason="again")
    with pytest.raises(r.RecordError, match="already stands"):
        _state(case)
    case = make_case(alice)
    case.append(alice, "release", alice, "owner")
    with pytest.raises(r.RecordError, match="no hold stands"):
        _state(case)


@pytest.mark.parametrize("field", ["subject", "role"])
def test_hold_names_its_author_as_owner_subject(make_case, lawyers, field):
    alice, bob, _ = lawyers
    case = make_case(alice)
    case.append(alice, "add", bob, "editor")
    if field == "subject":
        case.append(alice, "hold", bob, "editor", reason=REASON)
    else:
        case.append(alice, "hold", alice, "editor", reason=REASON)
    with pytest.raises(r.RecordError, match="names its author as subject"):
        _state(case)


def _body(case, author, action, **over):
    body = {
        "v": "cv1", "case_id": case.id, "seq": len(case.entries),
        "prev_hash": case.hashes()[-1], "action": action, "subject": author.id,
        "subject_fp": author.record.fingerprint_hex, "role": "owner", "author": author.id,
        "time": 200, "generation": 0, "key_link": "",
    }
    body.update(over)
    return body


@pytest.mark.parametrize(
    "action,over,rule",
    [
        ("hold", {}, "missing or unknown fields"),  # no reason
        ("release", {"reason": "done"}, "missing or unknown fields"),
        ("add", {"reason": "x"}, "missing or unknown fields"),
        ("hold", {"reason": ""}, "invalid reason"),
        ("hold", {"reason": "ok\nForged second line"}, "invalid reason"),
        ("hold", {"reason": "\u202eesaeler"}, "invalid reason"),
        ("hold", {"reason": "r" * (r.MAX_HOLD_REASON_CHARS + 1)}, "invalid reason"),
        ("hold", {"reason": 5}, "invalid reason"),
    ],
)
def test_hold_shape_is_strict(make_case, lawyers, action, over, rule):
    alice = lawyers[0]
    case = make_case(alice)
    body = _body(case, alice, action, **over)
    signed = r.sign_record(r.LABEL_MEMBERSHIP, body, alice.sk)
    with pytest.raises(r.RecordError, match=rule):
        r.open_envelope(r.LABEL_MEMBERSHIP, signed)
    with pytest.raises(r.RecordError, match=rule):
        fields = {k: v for k, v in body.items() if k not in ("v", "key_link")}
        membership.membership_entry_body(**fields, key_link=b"")


def test_hold_with_a_key_link_is_refused(make_case, lawyers):
    alice = lawyers[0]
    case = make_case(alice)
    body = _body(case, alice, "hold", reason=REASON, key_link="AAAA")
    case.entries.append(r.sign_record(r.LABEL_MEMBERSHIP, body, alice.sk))
    with pytest.raises(r.RecordError, match="key link"):
        _state(case)


def test_tampered_reason_is_caught_by_the_signature(make_case, lawyers):
    from vault.protocol.encoding import b64d, b64e, canonical_json, parse_canonical

    case = _held_case(make_case, lawyers)
    body = parse_canonical(b64d(case.entries[2]["body"]))
    body["reason"] = "released by agreement"
    case.entries[2] = {"body": b64e(canonical_json(body)), "sig": case.entries[2]["sig"]}
    with pytest.raises(r.RecordError, match="signature"):
        _state(case)


def _tombstone(case, who, seq):
    body = r.tombstone_body(case_id=case.id, file_id=new_id(), membership_seq=seq,
                            deleter=who.id, time=300)
    return r.sign_record(r.LABEL_TOMBSTONE, body, who.sk)


def test_tombstone_signed_under_a_hold_is_refused(make_case, lawyers):
    # A careless server accepted a deletion while the hold stood; every reader refuses it.
    alice, bob, _ = lawyers
    case = _held_case(make_case, lawyers)
    state = _state(case)
    with pytest.raises(r.RecordError, match="legal hold"):
        membership.verify_tombstone(_tombstone(case, bob, 2), state, case.identities)
    # Before the hold, and after its release, the same editor may delete.
    membership.verify_tombstone(_tombstone(case, bob, 1), state, case.identities)
    case.append(alice, "release", alice, "owner")
    state = _state(case)
    membership.verify_tombstone(_tombstone(case, bob, 3), state, case.identities)


def test_hold_events_are_membership_events_visible_to_the_scan(make_case, lawyers, audit):
    alice = lawyers[0]
    case = make_case(alice)
    hold = case.append(alice, "hold", alice, "owner", reason=REASON)
    index = audit.membership(case, hold, alice)
    release = case.append(alice, "release", alice, "owner")
    audit.membership(case, release, alice)
    skeleton = logentry.parse_skeleton(audit.leaves[index])
    assert skeleton.case_tag == logentry.case_tag(case.id)
    assert skeleton.membership == r.open_envelope(r.LABEL_MEMBERSHIP, hold).record_hash
    body = logentry.check_body(skeleton, audit.bodies[index])
    assert body.action == Action.CASE_HOLD_PLACED
    result = scan_for_membership(case.id, enumerate(audit.leaves), set(), start=0)
    assert [s.index for s in result.unseen] == [0, 1]


def test_hold_entry_filed_under_another_event_is_refused(make_case, lawyers, audit):
    # A server may not file a hold as, say, a role change (or hide it as a plain event).
    alice = lawyers[0]
    case = make_case(alice)
    hold = case.append(alice, "hold", alice, "owner", reason=REASON)
    for action in (Action.MEMBER_ROLE_CHANGED, Action.CASE_HOLD_RELEASED):
        with pytest.raises(logentry.LeafError, match="does not match"):
            audit.event(action=action, actor_id=alice.id, case_id=case.id, signed_record=hold)
