"""T12: a hostile server forges, reorders, drops or splices membership entries.

The attack goals: slip in a member the server controls, promote a viewer, or hide a revocation.
Each forged log is handed to the same replay the client runs; each must be refused.
"""

from __future__ import annotations

import pytest
from attack_kit import CaseLog, make_identity, resigned, tampered

from vault.protocol.membership import membership_entry_body
from vault.protocol.records import LABEL_MEMBERSHIP, RecordError


def test_T12_genuine_log_replays(case, people):
    state = case.state()
    assert state.role_of(people["bob"].user_id) == "editor"
    assert state.role_of(people["vera"].user_id) == "viewer"
    assert state.role_of(people["mallory"].user_id) is None


def test_T12_forged_entry_rejected(case, people):
    # The server appends "alice adds mallory as owner", signed with a key of its own.
    mallory = people["mallory"]
    forged = resigned(
        case.entries[-1],
        LABEL_MEMBERSHIP,
        mallory,
        seq=len(case.entries),
        prev_hash=case.state().head_hash,
        subject=mallory.user_id,
        subject_fp=mallory.record().fingerprint_hex,
        role="owner",
    )
    with pytest.raises(RecordError):
        _with(case, case.entries + [forged]).state()


def test_T12_promoted_viewer_with_original_signature_rejected(case, people):
    # Vera's "add as viewer" entry rewritten to "add as owner", keeping Alice's signature.
    entries = list(case.entries)
    entries[2] = tampered(entries[2], role="owner")
    with pytest.raises(RecordError, match="bad signature"):
        _with(case, entries).state()


def test_T12_entry_signed_by_non_owner_rejected(case, people):
    # Bob is an editor: his signature on "add mallory" is genuine but carries no authority.
    case.entries.append(_next_entry(case, author=people["bob"], subject=people["mallory"]))
    with pytest.raises(RecordError, match="only an owner"):
        case.state()


@pytest.mark.parametrize("order", [(0, 2, 1), (1, 0, 2), (0, 1, 1, 2)])
def test_T12_reordered_or_duplicated_entry_rejected(case, order):
    with pytest.raises(RecordError):
        _with(case, [case.entries[i] for i in order]).state()


def test_T12_dropped_entry_rejected(case, people):
    # Dropping Bob's removal from the middle of the log, to let him keep uploading.
    case.remove(people["bob"])
    case.add(make_identity("carol"), "viewer")
    without_removal = case.entries[:3] + case.entries[4:]
    with pytest.raises(RecordError):
        _with(case, without_removal).state()


def test_T12_entry_spliced_from_another_case_rejected(case, people):
    # Another case where Alice added Mallory as owner: the server splices that entry in here.
    other = CaseLog(people["alice"])
    other.add(people["mallory"], "owner")
    spliced = resigned(other.entries[1], LABEL_MEMBERSHIP, people["mallory"])
    with pytest.raises(RecordError):
        _with(case, case.entries + [other.entries[1]]).state()
    with pytest.raises(RecordError):
        _with(case, case.entries + [spliced]).state()


def test_T12_wrong_key_for_subject_rejected(case, people):
    # The owner's client pinned Mallory's real key; the server swaps in another key's fingerprint.
    case.know(people["mallory"])
    entry = _next_entry(case, author=people["alice"], subject=people["mallory"])
    impostor = make_identity("mallory")
    entry = resigned(
        entry, LABEL_MEMBERSHIP, people["alice"], subject_fp=impostor.record().fingerprint_hex
    )
    case.entries.append(entry)
    with pytest.raises(RecordError, match="wrong key"):
        case.state()


def test_T12_last_owner_cannot_be_removed_to_orphan_the_case(case, people):
    case.entries.append(
        resigned(
            _next_entry(case, author=people["alice"], subject=people["alice"]),
            LABEL_MEMBERSHIP,
            people["alice"],
            action="role",
            role="viewer",
        )
    )
    with pytest.raises(RecordError, match="at least one owner"):
        case.state()


def _with(case: CaseLog, entries: list[dict]) -> CaseLog:
    clone = CaseLog.__new__(CaseLog)
    clone.__dict__.update(case.__dict__)
    clone.entries = list(entries)
    return clone


def _next_entry(case: CaseLog, *, author, subject) -> dict:
    state = case.state()
    body = membership_entry_body(
        case_id=case.case_id,
        seq=len(case.entries),
        prev_hash=state.head_hash,
        action="add",
        subject=subject.user_id,
        subject_fp=subject.record().fingerprint_hex,
        role="viewer",
        author=author.user_id,
        time=state.entries[-1].time + 1,
        generation=state.generation,
    )
    return author.sign(LABEL_MEMBERSHIP, body)
