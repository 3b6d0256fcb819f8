"""The revocation scan and the memory of own membership entries, over an in-memory server whose
audit log holds real format-2 leaves (test_operations_fake_session.FakeApi). The server lies the
way a hostile one does: it serves a membership log without a removal that its log records."""

from __future__ import annotations

from typing import Any

import pytest
from test_operations_fake_session import FakeApi, RecordingLog, _session

from client import crypto
from client.cases import CaseOps
from client.errors import NotAuthenticated
from client.revocation import HiddenMembershipChange, RevocationScan
from client.session import Session
from vault.protocol import merkle
from vault.protocol.encoding import b64e, canonical_json
from vault.protocol.records import LABEL_MEMBERSHIP, open_envelope, parse_grant


class World:
    def __init__(self, tmp_path) -> None:
        self.api = FakeApi()
        self.alice = self._person(tmp_path, "alice")
        self.carol = self._person(tmp_path, "carol")
        self.bob = self._person(tmp_path, "bob")
        self.dave = self._person(tmp_path, "dave")

    def _person(self, tmp_path, name: str) -> Session:
        return _session(tmp_path, self.api, name, RecordingLog(self.api))

    def as_(self, person: Session) -> CaseOps:
        """Requests from now on come from `person` (the fake serves the caller's grants)."""
        self.api.caller = person.identity().user_id
        return CaseOps(person)

    def case_with_two_owners(self) -> str:
        case_id = self.as_(self.alice).create("R v Okafor")
        self.as_(self.alice).share(case_id, "carol", role="owner", fingerprint=None)
        self.as_(self.alice).share(case_id, "bob", role="editor", fingerprint=None)
        return case_id

    def hide_last_entry(self, case_id: str) -> None:
        """The hostile server's rewrite: the last membership entry and the grants it brought
        leave the membership table; the audit log keeps its leaf (clients pin the log)."""
        case = self.api.cases[case_id]
        self.hidden = case["entries"].pop()
        newest = max(parse_grant(g).generation for g in case["grants"])
        case["grants"] = [g for g in case["grants"] if parse_grant(g).generation != newest]


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def _evidence(person: Session) -> list[str]:
    folder = person.keystore.home / "evidence"
    return [p.read_text() for p in sorted(folder.glob("revocation-scan-*.txt"))]


def test_own_revocation_hidden_is_refused_at_load(world):
    """Variant 1: alice revoked bob herself; a log without her entry is shorter than hers."""
    case_id = world.case_with_two_owners()
    world.as_(world.alice).revoke(case_id, "bob")
    world.hide_last_entry(case_id)
    with pytest.raises(crypto.IntegrityError, match="rolled it back"):
        world.as_(world.alice).load(case_id)
    # The memory of her own entry stands on its own: the head last seen is not needed.
    (world.alice.keystore.home / "case_heads.json").unlink()
    with pytest.raises(crypto.IntegrityError, match="rolled it back"):
        world.as_(world.alice).load_for_encryption(case_id)
    saved = sorted((world.alice.keystore.home / "evidence").glob("membership-rollback-*.txt"))
    own = open_envelope(LABEL_MEMBERSHIP, world.hidden).record_hash
    assert len(saved) == 2 and f"3 {own}" in saved[-1].read_text()


def test_co_owners_revocation_hidden_stops_a_grant(world):
    """Variant 2: carol revoked bob; the server shows alice the log from before it. The scan
    finds the removal's leaf, the log does not hold it: alice seals nothing and keeps evidence."""
    case_id = world.case_with_two_owners()
    world.as_(world.alice).load(case_id)
    world.as_(world.carol).revoke(case_id, "bob")
    world.hide_last_entry(case_id)
    before = len(world.api.cases[case_id]["entries"])
    with pytest.raises(HiddenMembershipChange, match="does not hold") as caught:
        world.as_(world.alice).share(case_id, "dave", role="viewer", fingerprint=None)
    assert len(world.api.cases[case_id]["entries"]) == before  # nothing was appended
    hidden_hash = open_envelope(LABEL_MEMBERSHIP, world.hidden).record_hash
    (text,) = _evidence(world.alice)
    assert str(caught.value.evidence).endswith(".txt")
    assert f"{len(world.api.leaves) - 1} {hidden_hash}" in text
    assert "fake.example/log" in text or "checkpoint of the sharer" in text
    # It stays refused: the sighting is kept, and a later scan reads only new leaves.
    with pytest.raises(HiddenMembershipChange):
        world.as_(world.alice).load_for_encryption(case_id)


def test_two_owners_at_once_the_uploader_moves_to_the_new_generation(world):
    """Honest race: alice loaded the case, then carol revoked bob before alice encrypted. The
    scan sees carol's entry, alice reloads, and encrypts under generation 1, which bob lacks."""
    case_id = world.case_with_two_owners()
    alice = world.as_(world.alice)
    ctx = alice.load(case_id)
    assert ctx.generation == 0
    world.as_(world.carol).revoke(case_id, "bob")
    world.api.caller = world.alice.identity().user_id
    fresh = RevocationScan(world.alice).check(ctx, lambda: alice.load(case_id))
    assert fresh.generation == 1 and "bob" not in {fresh.username(u) for u in fresh.state.members}
    assert fresh.key != ctx.key


def test_scans_are_incremental_and_shared_by_every_case(world):
    one = world.case_with_two_owners()  # the first share scanned from leaf 0
    assert world.api.range_requests[0][:2] == (0, 1)
    two = world.as_(world.alice).create("R v Adeyemi")
    world.api.range_requests.clear()
    world.as_(world.alice).load_for_encryption(one)
    size = len(world.api.leaves)
    # From where the second share's scan ended: its own leaf and the new case's.
    assert world.api.range_requests == [(size - 2, size, size)]
    world.api.range_requests.clear()
    world.as_(world.alice).load_for_encryption(two)  # nothing new: no leaf read again
    assert all(start == size for start, _, _ in world.api.range_requests)
    world.as_(world.alice).share(two, "dave", role="viewer", fingerprint=None)
    world.api.range_requests.clear()
    world.as_(world.alice).load_for_encryption(one)
    assert [r[0] for r in world.api.range_requests] == [size]


def _lying_range(api: FakeApi, change) -> None:
    honest = api.log_range

    def log_range(start: int, end: int, size: int, *, frontier: bool) -> dict[str, Any]:
        return change(honest(start, end, size, frontier=frontier))
    api.log_range = log_range  # type: ignore[method-assign]


def _drop_a_leaf(reply: dict[str, Any]) -> dict[str, Any]:
    return {**reply, "skeletons": reply["skeletons"][:-2] + reply["skeletons"][-1:]}


def _wrong_frontier(reply: dict[str, Any]) -> dict[str, Any]:
    if reply["frontier"] is None:
        return reply
    return {**reply, "frontier": reply["frontier"] + [b64e(bytes(32))]}


def _legacy_leaf(reply: dict[str, Any]) -> dict[str, Any]:
    v1 = canonical_json({"v": "cv1/audit-entry", "event_id": 9, "time": "x", "action": "a:b:c",
                         "result": "success", "actor_id": None, "case_id": None,
                         "file_id": None, "source": None, "detail": {},
                         "signed_record": None})
    return {**reply, "skeletons": reply["skeletons"][:-1] + [b64e(v1)]}


def _refused(reply: dict[str, Any]) -> dict[str, Any]:
    raise NotAuthenticated(code="not_authenticated", status=401)


@pytest.mark.parametrize("change", [_drop_a_leaf, _wrong_frontier, _legacy_leaf, _refused])
def test_an_inconclusive_scan_refuses_and_does_not_advance(world, change):
    case_id = world.case_with_two_owners()
    # Two more leaves past the first scan's start, so a scan that resumes has a run to check.
    world.as_(world.alice).load_for_encryption(case_id)
    world.as_(world.alice).create("R v Lindqvist")
    world.as_(world.alice).create("R v Moreau")
    kept = world.alice.keystore.load_scan_state()
    if change is _wrong_frontier:
        (world.alice.keystore.home / "revocation_scan.json").unlink()  # first scan asks for it
        kept = None
    _lying_range(world.api, change)
    with pytest.raises(HiddenMembershipChange, match="inconclusive"):
        world.as_(world.alice).load_for_encryption(case_id)
    assert world.alice.keystore.load_scan_state() == kept
    (text,) = _evidence(world.alice)
    assert "range scanned:\n[" in text


def test_a_first_v2_that_moves_is_refused(world):
    case_id = world.case_with_two_owners()
    world.as_(world.alice).load_for_encryption(case_id)
    world.api.log_key = lambda: {"first_v2": 2}  # type: ignore[method-assign]
    with pytest.raises(HiddenMembershipChange, match="format 2 began at leaf 0"):
        world.as_(world.alice).load_for_encryption(case_id)


def test_a_checkpoint_the_range_does_not_reach_is_refused(world):
    case_id = world.case_with_two_owners()
    assert merkle.root_of_entries(world.api.leaves) == world.api.checkpoint().root_hash
    world.api.leaves.append(world.api.leaves[-1])  # the checkpoint grows, the range will not
    _lying_range(world.api, lambda r: {**r, "skeletons": []})
    with pytest.raises(HiddenMembershipChange, match="inconclusive"):
        world.as_(world.alice).load_for_encryption(case_id)
