"""The revocation scan over real format-2 leaves: a co-owner's removal that the server keeps out
of an owner's membership log is found in the audit log, and every way a server could keep it
out of the scan makes the scan inconclusive instead of clear."""

from __future__ import annotations

import pytest

from vault.protocol import merkle
from vault.protocol import revocation_scan as rs
from vault.protocol.events import Action
from vault.protocol.logentry import build_leaf


def subtree_of(leaves: list[bytes]):
    def subtree(level: int, index: int) -> bytes:
        width = 1 << level
        return merkle.root_of_entries(leaves[index * width : (index + 1) * width])

    return subtree


def range_request(leaves: list[bytes], start: int) -> dict:
    """What an honest server answers for [start, size): the frontier at start and the leaves."""
    return {
        "start": start,
        "left_frontier": merkle.frontier_from_subtrees(subtree_of(leaves), start),
        "leaves": leaves[start:],
        "checkpoint_size": len(leaves),
        "checkpoint_root": merkle.root_of_entries(leaves),
    }


@pytest.fixture
def hidden_revocation(lawyers, make_case, audit):
    """Alice and Bob own a case with Carol; Bob removes Carol. Alice's copy of the membership
    log (as a hostile server serves it) stops before the removal. Other cases' traffic around."""
    alice, bob, carol = lawyers
    case = make_case(alice)
    audit.membership(case, case.entries[0], alice)
    other = make_case(carol)
    audit.membership(other, other.entries[0], carol)
    audit.membership(case, case.append(alice, "add", bob, "owner"), alice)
    audit.membership(case, case.append(alice, "add", carol, "editor"), alice)
    known = set(case.hashes())  # what Alice verified
    scan_from = len(audit.leaves)
    audit.download(case, carol)
    audit.membership(other, other.append(carol, "add", alice, "viewer"), carol)
    removal_index = audit.membership(case, case.append(bob, "remove", carol, "editor"), bob)
    audit.login(bob)
    audit.download(other, carol)
    return case, other, known, scan_from, removal_index, audit


def test_scan_finds_the_revocation_the_membership_log_hid(hidden_revocation):
    case, other, known, scan_from, removal_index, audit = hidden_revocation
    result = rs.scan_checkpointed_range(
        case.id, known_entry_hashes=known, **range_request(audit.leaves, scan_from)
    )
    assert not result.clear
    assert result.unseen == (rs.MembershipSighting(removal_index, case.hashes()[-1]),)
    assert (result.start, result.end) == (scan_from, len(audit.leaves))
    # The other case's membership change in the same range is not Alice's concern here.
    assert all(s.index != scan_from + 1 for s in result.unseen + result.seen)


def test_scan_is_clear_once_the_client_has_verified_every_change(hidden_revocation):
    case, _, _, scan_from, removal_index, audit = hidden_revocation
    result = rs.scan_checkpointed_range(
        case.id, known_entry_hashes=set(case.hashes()), **range_request(audit.leaves, scan_from)
    )
    assert result.clear
    assert result.seen == (rs.MembershipSighting(removal_index, case.hashes()[-1]),)


def test_scanning_from_zero_sees_every_membership_event_of_the_case(hidden_revocation):
    case, _, known, _, removal_index, audit = hidden_revocation
    result = rs.scan_checkpointed_range(
        case.id, known_entry_hashes=known, **range_request(audit.leaves, 0)
    )
    assert [s.entry_hash for s in result.seen] == case.hashes()[:3]
    assert [s.index for s in result.unseen] == [removal_index]


def test_server_dropping_the_revocation_leaf_is_caught_by_the_checkpoint(hidden_revocation):
    case, _, known, scan_from, removal_index, audit = hidden_revocation
    request = range_request(audit.leaves, scan_from)
    request["leaves"] = [leaf for i, leaf in enumerate(audit.leaves[scan_from:], scan_from)
                         if i != removal_index]
    with pytest.raises(rs.ScanInconclusive, match="ends at"):
        rs.scan_checkpointed_range(case.id, known_entry_hashes=known, **request)
    # Dropping it and claiming a size one smaller fails on the signed root.
    request["checkpoint_size"] -= 1
    with pytest.raises(rs.ScanInconclusive, match="signed checkpoint"):
        rs.scan_checkpointed_range(case.id, known_entry_hashes=known, **request)


def test_server_swapping_the_revocation_skeleton_is_caught(hidden_revocation, lawyers):
    case, _, known, scan_from, removal_index, audit = hidden_revocation
    # An untagged skeleton in its place: a valid leaf, but not the one the checkpoint signed.
    innocent, _ = build_leaf(
        event_id=removal_index + 1, time="2026-12-01T10:00:00.000000Z", action=Action.LOGIN_OK,
        result="success", actor_id=lawyers[1].id, case_id=None, file_id=None, source=None,
        detail={}, signed_record=None)
    request = range_request(audit.leaves, scan_from)
    request["leaves"][removal_index - scan_from] = innocent
    with pytest.raises(rs.ScanInconclusive, match="signed checkpoint"):
        rs.scan_checkpointed_range(case.id, known_entry_hashes=known, **request)


def test_a_frontier_for_another_history_is_caught(hidden_revocation):
    case, _, known, scan_from, _, audit = hidden_revocation
    request = range_request(audit.leaves, scan_from)
    request["left_frontier"] = [merkle.leaf_hash(b"another past")] * len(request["left_frontier"])
    with pytest.raises(rs.ScanInconclusive, match="signed checkpoint"):
        rs.scan_checkpointed_range(case.id, known_entry_hashes=known, **request)
    request["left_frontier"] = request["left_frontier"][:-1]
    with pytest.raises(rs.ScanInconclusive, match="frontier"):
        rs.scan_checkpointed_range(case.id, known_entry_hashes=known, **request)


def test_version_1_leaf_in_range_makes_the_scan_refuse(lawyers, make_case, audit):
    case = make_case(lawyers[0])
    audit.membership(case, case.entries[0], lawyers[0])
    legacy = audit.v1(case)
    audit.download(case, lawyers[0])
    with pytest.raises(rs.ScanInconclusive, match="version-1") as refused:
        rs.scan_checkpointed_range(
            case.id, known_entry_hashes=set(case.hashes()), **range_request(audit.leaves, 0)
        )
    assert refused.value.index == legacy
    # Starting after the last version-1 leaf (the pinned first format-2 index) concludes.
    result = rs.scan_checkpointed_range(
        case.id, known_entry_hashes=set(case.hashes()),
        **range_request(audit.leaves, legacy + 1),
    )
    assert result.clear and result.start == legacy + 1


def test_malformed_skeleton_makes_the_scan_refuse(hidden_revocation):
    case, _, known, scan_from, _, audit = hidden_revocation
    leaves = list(audit.leaves)
    leaves[scan_from + 2] = leaves[scan_from + 2].replace(b'"membership":', b'"membership" :')
    with pytest.raises(rs.ScanInconclusive, match="malformed") as refused:
        rs.scan_checkpointed_range(
            case.id, known_entry_hashes=known, **range_request(leaves, scan_from)
        )
    assert refused.value.index == scan_from + 2


def test_gaps_and_disorder_in_indexes_are_refused(hidden_revocation):
    case, _, known, scan_from, _, audit = hidden_revocation
    pairs = list(enumerate(audit.leaves))[scan_from:]
    with pytest.raises(rs.ScanInconclusive, match="expected"):
        rs.scan_for_membership(case.id, pairs[:1] + pairs[2:], known, start=scan_from)
    with pytest.raises(rs.ScanInconclusive, match="expected"):
        rs.scan_for_membership(case.id, pairs, known, start=scan_from - 1)


def test_paged_scan_keeps_its_own_frontier_for_the_next_scan(hidden_revocation, lawyers):
    case, _, known, scan_from, removal_index, audit = hidden_revocation
    request = range_request(audit.leaves, scan_from)
    scan = rs.RangeScan(case.id, start=scan_from, left_frontier=request["left_frontier"],
                        known_entry_hashes=known)
    scan.feed(audit.leaves[scan_from : scan_from + 2])
    scan.feed([])
    scan.feed(audit.leaves[scan_from + 2 :])
    first = scan.finish(len(audit.leaves), merkle.root_of_entries(audit.leaves))
    assert [s.index for s in first.unseen] == [removal_index]

    # The log grows; the next scan starts where this one ended, with no frontier from the
    # server, and sees Carol's re-admission as a new unseen change.
    readd = audit.membership(case, case.append(lawyers[1], "add", lawyers[2], "viewer"),
                             lawyers[1])
    audit.login(lawyers[0])
    second = rs.scan_checkpointed_range(
        case.id, start=first.end, left_frontier=first.frontier,
        leaves=audit.leaves[first.end :], checkpoint_size=len(audit.leaves),
        checkpoint_root=merkle.root_of_entries(audit.leaves),
        known_entry_hashes=set(case.hashes()[:-1]),
    )
    assert [s.index for s in second.unseen] == [readd]


def test_no_result_without_the_checkpoint(hidden_revocation):
    case, _, known, scan_from, _, audit = hidden_revocation
    request = range_request(audit.leaves, scan_from)
    scan = rs.RangeScan(case.id, start=scan_from, left_frontier=request["left_frontier"],
                        known_entry_hashes=known)
    scan.feed(audit.leaves[scan_from:])
    with pytest.raises(rs.ScanInconclusive):
        scan.finish(len(audit.leaves), merkle.root_of_entries(audit.leaves[:-1]))
    with pytest.raises(rs.ScanInconclusive):
        scan.finish(len(audit.leaves) + 1, merkle.root_of_entries(audit.leaves))
