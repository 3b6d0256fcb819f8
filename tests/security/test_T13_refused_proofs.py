"""T13 extended (issue 13, item 8): a server that refuses a proof with a 401 must not pass for
an ended session.

The attack: after serving a case's entries, the server answers the inclusion proof with 401.
The client used to say "session expired" and save nothing, so a lawyer logs in again and the
refusal to prove is forgotten. Now any error reply to a request made after the checkpoint is
evidence, and the verdict is "verification could not complete", exit 3.

Real `casevault` console script against a real uvicorn whose proof route is made to refuse.
"""

from __future__ import annotations

import pytest
from test_T36_source_addresses import casevault

from vault import errors
from vault.services import auditlog

EXIT_INTEGRITY = 3


def _refuse_with(error: Exception):
    def refuse(*args, **kwargs):
        raise error

    return refuse


@pytest.mark.parametrize(
    "error",
    [errors.NotAuthenticated("not logged in"), RuntimeError("proof store on fire")],
    ids=["401", "500"],
)
def test_T13_refused_proof_request_is_evidence_and_exit_3(lawyer, live_server, tmp_path,
                                                          monkeypatch, error):
    alice = lawyer("alice")
    case_id = alice.create_case("R v Okafor")
    doc = tmp_path / "statement.txt"
    doc.write_bytes(b"witness statement")
    alice.put(case_id, [doc])
    before = set((alice.keystore.home / "evidence").glob("*"))
    monkeypatch.setattr(auditlog, "inclusion_proof", _refuse_with(error))
    proc = casevault(alice, live_server, "audit", case_id)
    assert proc.returncode == EXIT_INTEGRITY, proc.stderr
    assert "verification could not complete" in proc.stderr
    assert "session expired" not in proc.stderr and proc.stdout == ""
    (evidence,) = set((alice.keystore.home / "evidence").glob("*")) - before
    text = evidence.read_text()
    assert "GET /v1/log/proof/inclusion" in text and "pinned checkpoint" in text
    # The session itself is fine: the same command works once the server proves again.
    monkeypatch.undo()
    assert casevault(alice, live_server, "audit", case_id).returncode == 0


def test_T13_ended_session_at_the_checkpoint_is_still_an_ended_session(lawyer, live_server):
    """A 401 to the first request of a verification is the lawyer's session, not evidence."""
    alice = lawyer("alice")
    case_id = alice.create_case("R v Okafor")
    alice.logout()
    proc = casevault(alice, live_server, "audit", case_id)
    assert proc.returncode not in (0, EXIT_INTEGRITY)
    assert "verification could not complete" not in proc.stderr
    assert not (alice.keystore.home / "evidence").exists()
