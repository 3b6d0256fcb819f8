"""Leaf format 2: what the public skeleton reveals, how a body is bound to it, and the source
address commitment. Each refusal is something a lying server could write."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from vault.protocol import logentry as le
from vault.protocol.encoding import canonical_json, parse_canonical
from vault.protocol.events import Action

NONCE = bytes(range(16))


def test_skeleton_reveals_no_name_id_address_or_detail(lawyers, make_case, audit):
    alice, bob, _ = lawyers
    case = make_case(alice)
    signed = case.append(alice, "add", bob, "editor")
    index = audit.membership(case, signed, alice)
    downloaded = audit.download(case, bob)
    audit.login(bob)
    for leaf in audit.leaves:
        text = leaf.decode()
        for secret in (case.id, alice.id, bob.id, "192.0.2.7", "198.51.100.4", "2001:db8::1",
                       "case:member", "file:version", signed["body"], "editor"):
            assert secret not in text
    # The membership event shows only its tag and its entry hash; others show neither.
    skeleton = le.parse_skeleton(audit.leaves[index])
    assert skeleton.case_tag == le.case_tag(case.id)
    assert skeleton.membership == case.hashes()[-1]
    assert le.parse_skeleton(audit.leaves[downloaded]).case_tag is None
    assert set(json.loads(audit.leaves[downloaded])) == {
        "v", "event_id", "time", "case_tag", "membership", "body"}


def test_body_round_trip_and_source_opened_only_with_the_nonce(lawyers, make_case, audit):
    alice, _, _ = lawyers
    case = make_case(alice)
    nonce = os.urandom(16)
    skeleton_bytes, body_bytes = le.build_leaf(
        event_id=7, time="2026-12-01T10:00:00.000000Z", action=Action.FILE_UPLOADED,
        result="success", actor_id=alice.id, case_id=case.id, file_id=None,
        source=("203.0.113.9", nonce), detail={"version": 3}, signed_record=None)
    skeleton = le.parse_skeleton(skeleton_bytes)
    body = le.check_body(skeleton, body_bytes)
    assert (body.actor_id, body.case_id, body.detail) == (alice.id, case.id, {"version": 3})
    assert "203.0.113.9" not in body_bytes.decode()
    assert le.check_source(body, "203.0.113.9", nonce)
    # Another address, another nonce, or no nonce at all: the commitment does not open.
    assert not le.check_source(body, "203.0.113.10", nonce)
    assert not le.check_source(body, "203.0.113.9", os.urandom(16))
    assert not le.check_source(body, "203.0.113.9", b"")


def test_source_commitment_is_domain_separated_and_salted():
    plain = hashlib.sha256(b"192.0.2.7").hexdigest()
    assert le.commit_source("192.0.2.7", NONCE) != plain
    assert le.commit_source("192.0.2.7", NONCE) != le.commit_source("192.0.2.7", bytes(16))
    assert le.commit_source("192.0.2.7", NONCE) == hashlib.sha256(
        b"cv1/audit-source\x00" + NONCE + b"192.0.2.7").hexdigest()
    for address, nonce in [("192.0.2.7", NONCE[:15]), ("", NONCE), ("a\x00b", NONCE),
                           ("x" * 101, NONCE), ("192.0.2.7\n", NONCE)]:
        with pytest.raises(le.LeafError):
            le.commit_source(address, nonce)


def test_case_tag_is_domain_separated_and_needs_an_id():
    case_id = "0" * 32
    assert le.case_tag(case_id) == hashlib.sha256(b"cv1/audit-case-tag\x00" + b"0" * 32).hexdigest()
    assert le.case_tag(case_id) != hashlib.sha256(case_id.encode()).hexdigest()
    for bad in ("0" * 31, "0" * 32 + "\n", "A" * 32, None):
        with pytest.raises(le.LeafError):
            le.case_tag(bad)


def _skeleton(**changes):
    obj = {"v": le.LEAF_VERSION_2, "event_id": 1, "time": "2026-12-01T10:00:00.000000Z",
           "case_tag": None, "membership": None, "body": "a" * 64}
    obj.update(changes)
    return canonical_json({k: v for k, v in obj.items() if v != "DROP"})


def test_skeleton_parse_is_strict():
    assert le.parse_skeleton(_skeleton()).event_id == 1
    bad = [
        _skeleton(extra=1), _skeleton(body="DROP"), _skeleton(v="cv1/audit-entry/3"),
        _skeleton(event_id=True), _skeleton(event_id=0), _skeleton(event_id="1"),
        _skeleton(time="2026-12-01 10:00:00"), _skeleton(time="2026-12-01T10:00:00.000000Z\n"),
        _skeleton(body="A" * 64), _skeleton(body="a" * 63), _skeleton(body="a" * 64 + "\n"),
        # A tag without an entry hash (or the reverse) could hide a membership change.
        _skeleton(case_tag="b" * 64), _skeleton(membership="b" * 64),
        _skeleton(case_tag="b" * 64, membership="B" * 64),
        _skeleton()[:-1] + b" }", _skeleton().replace(b'"v"', b'"v" '), b"[]", b"\xff",
    ]
    for data in bad:
        with pytest.raises(le.LeafError):
            le.parse_skeleton(data)
    with pytest.raises(le.LeafError):
        le.parse_skeleton("not bytes")  # type: ignore[arg-type]


def test_version_1_leaf_is_named_as_such(lawyers, make_case, audit):
    index = audit.v1(make_case(lawyers[0]))
    with pytest.raises(le.LegacyLeaf):
        le.parse_skeleton(audit.leaves[index])
    assert le.parse_entry_v1(audit.leaves[index])["source"] == "192.0.2.7"
    with pytest.raises(le.LeafError):
        le.parse_entry_v1(_skeleton())


def test_body_must_hash_to_the_skeleton(lawyers, make_case, audit):
    alice, bob, _ = lawyers
    case = make_case(alice)
    first, second = audit.download(case, alice), audit.download(case, bob)
    skeleton = le.parse_skeleton(audit.leaves[first])
    with pytest.raises(le.LeafError):
        le.check_body(skeleton, audit.bodies[second])
    with pytest.raises(le.LeafError):
        le.check_body(skeleton, audit.bodies[first] + b" ")


def _forge(body: dict, **skeleton_changes) -> tuple[le.Skeleton, bytes]:
    """A skeleton that names `body` by its true hash: what a lying server can always write."""
    body_bytes = canonical_json(body)
    fields = {"body": le.body_hash(body_bytes), **skeleton_changes}
    return le.parse_skeleton(_skeleton(**fields)), body_bytes


def test_revocation_filed_without_its_tag_is_caught_by_the_body(lawyers, make_case, audit):
    alice, bob, carol = lawyers
    case = make_case(alice)
    case.append(alice, "add", bob, "owner")
    removal = case.append(bob, "remove", alice, "owner")
    honest = audit.membership(case, removal, bob)
    body = parse_canonical(audit.bodies[honest])
    entry_hash = case.hashes()[-1]
    # Hidden from scans: no tag, no entry hash.
    skeleton, body_bytes = _forge(body)
    with pytest.raises(le.LeafError, match="membership"):
        le.check_body(skeleton, body_bytes)
    # Filed under another case's tag, or naming an entry the body does not carry.
    other = make_case(carol)
    for tag, entry in [(le.case_tag(other.id), entry_hash), (le.case_tag(case.id), "c" * 64)]:
        skeleton, body_bytes = _forge(body, case_tag=tag, membership=entry)
        with pytest.raises(le.LeafError):
            le.check_body(skeleton, body_bytes)
    # A tagged leaf for an event that changes no membership is refused too.
    plain = parse_canonical(audit.bodies[audit.download(case, bob)])
    skeleton, body_bytes = _forge(plain, case_tag=le.case_tag(case.id), membership=entry_hash)
    with pytest.raises(le.LeafError):
        le.check_body(skeleton, body_bytes)


def test_membership_event_must_carry_its_own_entry(lawyers, make_case):
    alice, bob, _ = lawyers
    case, other = make_case(alice), make_case(bob)
    added = case.append(alice, "add", bob, "viewer")
    common = {"event_id": 3, "time": "2026-12-01T10:00:00.000000Z", "result": "success",
              "actor_id": alice.id, "file_id": None, "source": None, "detail": {}}
    with pytest.raises(le.LeafError):  # the entry of another case
        le.build_leaf(action=Action.MEMBER_ADDED, case_id=other.id, signed_record=added, **common)
    with pytest.raises(le.LeafError):  # an add recorded as a removal
        le.build_leaf(action=Action.MEMBER_REMOVED, case_id=case.id, signed_record=added, **common)
    with pytest.raises(le.LeafError):  # no entry at all
        le.build_leaf(action=Action.MEMBER_ADDED, case_id=case.id, signed_record=None, **common)
    # A refused membership change changed nothing, so it is not tagged for scans.
    skeleton, _ = le.build_leaf(action=Action.MEMBER_ADDED, case_id=case.id, signed_record=None,
                                **{**common, "result": "failure"})
    assert le.parse_skeleton(skeleton).membership is None


def test_body_parse_is_strict(lawyers, make_case, audit):
    alice, _, _ = lawyers
    good = parse_canonical(audit.bodies[audit.download(make_case(alice), alice)])
    bad_changes = [
        {"source": "192.0.2.7"}, {"result": "ok"}, {"action": "download"},
        {"actor_id": "x"}, {"file_id": "0" * 32 + "\n"}, {"source_commitment": "zz"},
        {"detail": "text"}, {"signed_record": {"body": "a"}}, {"signed_record": "a.b"},
    ]
    for change in bad_changes:
        body = {**good, **change}
        skeleton, body_bytes = _forge(body)
        with pytest.raises(le.LeafError):
            le.check_body(skeleton, body_bytes)
    missing = dict(good)
    del missing["detail"]
    with pytest.raises(le.LeafError):
        le.check_body(*_forge(missing))
