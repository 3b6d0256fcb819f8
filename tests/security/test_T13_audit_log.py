"""T13: the operator rewrites, truncates, rolls back or forks the audit log, to erase who
touched a file or to show different histories to different people.

The lawyer runs `audit` through the real client (`client.vault`) against a real uvicorn; the
operator edits the real database between runs. Every attack is a hard error, and the evidence
is saved to a file that anyone can check with the log's public key.
"""

from __future__ import annotations

import nacl.signing
import pytest
from attack_kit import forged_leaf, leaf_event, log_entries, rewrite_log

from client.auditlog import AuditLog, AuditVerificationError
from client.crypto.errors import IntegrityError
from vault.protocol.checkpoint import open_checkpoint
from vault.services import auditlog


@pytest.fixture
def setting(lawyer, app_settings, tmp_path):
    """Alice's case with an upload and a share, audited once (so a checkpoint is pinned)."""
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Castillo")
    doc = tmp_path / "interview.txt"
    doc.write_bytes(b"interview notes")
    alice.put(case_id, [doc])
    alice.share(case_id, "bob", role="editor")
    history = alice.audit(case_id)
    assert {"file:version:uploaded", "case:member:added"} <= {e["action"] for e in history}
    return alice, bob, case_id, app_settings.resolved_database_url()


def _evidence(vault) -> list[str]:
    return [p.read_text() for p in sorted((vault.keystore.home / "evidence").glob("*"))]


def _more_activity(vault, case_id):
    vault.ls(case_id)  # a listing is logged, so the log grows past the pinned size


def test_T13_rewritten_entry_detected(setting):
    alice, _, case_id, url = setting
    entries = log_entries(url)
    index = next(i for i, e in enumerate(entries)
                 if leaf_event(e)["action"] == "file:version:uploaded")
    entries[index] = forged_leaf(entries[index], b"file:version:uploaded",
                                 b"file:version:listed__")
    rewrite_log(url, entries)
    _more_activity(alice, case_id)
    with pytest.raises(IntegrityError, match="audit log"):
        alice.audit(case_id)
    assert _evidence(alice)


def test_T13_truncated_log_detected(setting):
    alice, _, case_id, url = setting
    entries = log_entries(url)
    rewrite_log(url, entries[:-3])  # the share and what followed it never happened
    with pytest.raises(IntegrityError, match="audit log"):
        alice.audit(case_id)
    assert any("shrank" in text for text in _evidence(alice))


def test_T13_rollback_to_backup_detected(setting):
    alice, bob, case_id, url = setting
    backup = log_entries(url)
    _more_activity(bob, case_id)
    _more_activity(alice, case_id)
    alice.audit(case_id)  # Alice pins the newer state
    rewrite_log(url, backup)  # the operator restores last night's backup of the log
    with pytest.raises(IntegrityError, match="audit log"):
        alice.audit(case_id)
    # Padding the restored log past Alice's pin does not help: it must *extend* what she saw.
    for _ in range(4):
        _more_activity(bob, case_id)
    with pytest.raises(IntegrityError, match="audit log"):
        alice.audit(case_id)


def test_T13_fork_detected_and_provable(setting, live_server, app):
    alice, bob, case_id, url = setting
    bob.audit(case_id)
    common = log_entries(url)
    _more_activity(alice, case_id)
    _more_activity(alice, case_id)
    alice.audit(case_id)
    alice_log = AuditLog(alice.keystore.home, None)
    alice_text = alice_log.pinned()[1]
    # The operator shows Bob a history of the same length without Alice's two listings.
    size = open_checkpoint(alice_text, alice_log.verifier()).size
    filler = [(b'{"forged":%d}' % i, 90_000 + i, None, None) for i in range(size - len(common))]
    forged = common + filler
    rewrite_log(url, forged)
    bob.audit(case_id)  # Bob alone cannot tell: his pin is older and the forgery extends it
    bob_log = AuditLog(bob.keystore.home, None)
    bob_text = bob_log.pinned()[1]
    # Alice's client sees the other branch at her pinned size.
    with pytest.raises(IntegrityError, match="audit log"):
        alice.audit(case_id)
    # The two checkpoints are the portable proof: both validly signed by the log key, same
    # size, different roots. Anyone with the log's public key can check it.
    key = alice_log.verifier()
    a, b = open_checkpoint(alice_text, key), open_checkpoint(bob_text, key)
    assert a.size == b.size and a.root_hash != b.root_hash
    assert any(bob_text in text or alice_text in text for text in _evidence(alice))


def test_T13_bad_checkpoint_signature_rejected(setting, app):
    alice, _, case_id, _ = setting
    # A server (or a man in the middle) signs with a key other than the pinned log key.
    app.state.log_signer = auditlog.LogSigner(nacl.signing.SigningKey.generate())
    _more_activity(alice, case_id)
    with pytest.raises(IntegrityError, match="audit log"):
        alice.audit(case_id)


def test_T13_verification_failure_shows_nothing(setting):
    alice, _, case_id, url = setting
    rewrite_log(url, log_entries(url)[:-2])
    with pytest.raises(IntegrityError):
        alice.audit(case_id)


def test_T13_errors_are_audit_errors_not_crashes(setting):
    alice, _, case_id, url = setting
    rewrite_log(url, [])
    with pytest.raises(IntegrityError):
        alice.audit(case_id)
    with pytest.raises(AuditVerificationError):
        AuditLog(alice.keystore.home, lambda path, params: {"checkpoint": 42}).refresh()
