"""T36: a member reads the source addresses of the other members of a case.

The attack (issue 13, item 13): a co-counsel, a viewer added today included, asks the server
for the case's audit entries with his own session and reads where every other member works
from, for the whole history of the case. Defence: format-2 leaves carry a salted commitment
to the address; the server reveals address and nonce to the event's actor only. The actor's
client opens the commitment (`check_source`), so a server that shows a lawyer another address
than the one it logged is caught.

Real client (`client.vault`, and the `casevault` console script) against a real uvicorn. Each
lawyer reaches the server through a proxy that names their address (X-Forwarded-For from the
loopback peer, which this uvicorn trusts), so the two have different addresses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from attack_kit import PASSPHRASE, bearer, run_sql

from client.crypto.errors import IntegrityError
from vault.protocol import logentry
from vault.protocol.encoding import b64d

ALICE_ADDRESS = "192.0.2.1"
BOB_ADDRESS = "198.51.100.2"
EXIT_INTEGRITY = 3


def casevault(vault, server: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI over the lawyer's own home (its saved session), in a subprocess."""
    env = {**os.environ, "CASEVAULT_HOME": str(vault.keystore.home),
           "CASEVAULT_SERVER": server, "CASEVAULT_PASSPHRASE": PASSPHRASE,
           "CASEVAULT_TEST_INSECURE_KDF": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "casevault"), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def world(lawyer, tmp_path, app_settings):
    alice, bob = lawyer("alice"), lawyer("bob")
    alice.api._client.headers["X-Forwarded-For"] = ALICE_ADDRESS
    bob.api._client.headers["X-Forwarded-For"] = BOB_ADDRESS
    case_id = alice.create_case("R v Okafor")
    doc = tmp_path / "statement.txt"
    doc.write_bytes(b"witness statement")
    (put,) = alice.put(case_id, [doc])
    alice.share(case_id, "bob", role="viewer")
    bob.get(case_id, put["file_id"], output=tmp_path / "copy.txt")
    url = app_settings.resolved_database_url()
    # The server did record where each of them works from: there is something to steal.
    recorded = {r[0] for r in run_sql(url, "SELECT source FROM audit_events")}
    assert {ALICE_ADDRESS, BOB_ADDRESS} <= recorded
    return alice, bob, case_id, url


def test_T36_member_reads_no_other_members_address(world, live_server):
    alice, bob, case_id, _ = world
    # Bob, as a curious co-counsel, asks the server directly with his own session.
    with httpx.Client(base_url=live_server, headers=bearer(bob)) as http:
        reply = http.get("/v1/log/entries", params={"case_id": case_id})
        size = len(reply.json()["entries"])
        checkpoint = http.get("/v1/log/checkpoint").json()
        key = http.get("/v1/log/key").json()
    assert reply.status_code == 200 and size > 0
    assert ALICE_ADDRESS not in reply.text
    own = 0
    for row in reply.json()["entries"]:
        body = logentry.check_body(logentry.parse_skeleton(b64d(row["entry"])),
                                   b64d(row["body"]))
        if body.actor_id == alice.me.user_id:
            # Alice's events carry only the commitment; no nonce to test a guess against.
            assert row["source_opening"] is None and body.source_commitment is not None
        elif body.actor_id == bob.me.user_id:
            opening = row["source_opening"]
            assert opening["address"] == BOB_ADDRESS
            assert logentry.check_source(body, BOB_ADDRESS, b64d(opening["nonce"]))
            own += 1
    assert own >= 1
    assert ALICE_ADDRESS not in json.dumps([checkpoint, key])
    # Through the real client and the real CLI Bob sees the case's history, Alice's address
    # nowhere in it.
    assert bob.audit(case_id)
    shown = casevault(bob, live_server, "--json", "audit", case_id)
    assert shown.returncode == 0, shown.stderr
    assert any(e["actor"] == "alice" for e in json.loads(shown.stdout))
    assert ALICE_ADDRESS not in shown.stdout + shown.stderr


def test_T36_own_entries_open_and_a_different_address_is_caught(world, live_server):
    alice, _, case_id, url = world
    # Alice's own events open to her address: her receipts were checked with check_source.
    records = alice.session.audit_log().case_entries(case_id)
    mine = [e["record"] for e in records if e["record"]["actor_id"] == alice.me.user_id]
    assert mine and {r["source"] for r in mine} == {ALICE_ADDRESS}
    # The operator shows Alice another address for her upload than the one the log holds.
    run_sql(url, "UPDATE audit_events SET source = '203.0.113.66'"
                 " WHERE actor_id = :a AND action = 'file:version:uploaded'",
            {"a": alice.me.user_id})
    with pytest.raises(IntegrityError, match="not the one the log committed to"):
        alice.audit(case_id)
    proc = casevault(alice, live_server, "audit", case_id)
    assert proc.returncode == EXIT_INTEGRITY and proc.stdout == ""
    assert "not the one the log committed to" in proc.stderr
    evidence = sorted((alice.keystore.home / "evidence").glob("*.txt"))
    assert evidence and "203.0.113.66" in evidence[-1].read_text()


def test_T36_withheld_opening_of_own_action_is_caught(world):
    alice, _, case_id, url = world
    receipt = json.loads((alice.keystore.home / "receipts.json").read_text())[-1]
    # The server stops showing Alice where her own action came from.
    run_sql(url, "UPDATE audit_events SET source_nonce = NULL WHERE id = "
                 "(SELECT event_id FROM log_leaves WHERE leaf_index = :i)",
            {"i": receipt["index"]})
    log = alice.session.audit_log()
    from client.auditlog import AuditVerificationError

    with pytest.raises(AuditVerificationError, match="withheld the source address"):
        log.fetch_receipt(receipt["index"], expect={"actor_id": alice.me.user_id})
