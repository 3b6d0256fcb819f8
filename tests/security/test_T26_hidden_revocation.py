"""T26 (hidden revocation): a hostile server serves an owner the membership log and key grants
as they were before a revocation, so that the owner's next upload is wrapped under the old case
key, which the removed member holds.

The server's database is rewritten the way a server operator would (the removal entry, its
grants and the member row put back as before); the audit log is left as it is, because it is
append-only and every client pins it. Alice's `put` runs as the real `casevault` console script
against the real app under uvicorn; the set-up runs through the same client library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from attack_kit import PASSPHRASE, run_sql

from client.crypto.errors import IntegrityError
from client.crypto.seal import unwrap_file_key
from vault.protocol.encoding import b64d, b64e

BIN = Path(sys.executable).parent


class Interposer:
    """The server wrapped: a one-shot hook may run before a path is served (in a worker
    thread, so the server goes on serving meanwhile), and a path's JSON reply may be rewritten."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.before: dict[str, Callable[[], None]] = {}
        self.rewrite: dict[str, Callable[[dict], dict]] = {}
        self.seen: list[str] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        path = scope["path"]
        self.seen.append(f"{scope['method']} {path}")
        hook = self.before.pop(path, None)
        if hook is not None:
            await anyio.to_thread.run_sync(hook)
        change = self.rewrite.get(path)
        if change is None:
            await self.inner(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.inner(scope, receive, capture)
        body = b"".join(chunks)
        if start["status"] == 200:
            body = json.dumps(change(json.loads(body))).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def app(app):
    """The test app behind an Interposer (live_server serves this one)."""
    return Interposer(app)


def cli_put(vault: Any, server: str, case_id: str, path: Path) -> subprocess.CompletedProcess:
    """`casevault --json put` as the lawyer whose home `vault` uses (its saved session)."""
    env = {**os.environ, "CASEVAULT_HOME": str(vault.session.keystore.home),
           "CASEVAULT_SERVER": server, "CASEVAULT_PASSPHRASE": PASSPHRASE,
           "CASEVAULT_TEST_INSECURE_KDF": "1"}
    return subprocess.run([str(BIN / "casevault"), "--json", "put", case_id, str(path)],
                          env=env, capture_output=True, text=True, timeout=120)


def user_id(vault: Any) -> str:
    return vault.me.user_id


def hide_last_removal(url: str, case_id: str, member: tuple) -> None:
    """The hostile rewrite: the case's membership as before its last entry (a removal)."""
    ((seq, generation),) = run_sql(
        url, "SELECT membership_seq, generation FROM cases WHERE id = :c", {"c": case_id})
    ((action, prev_head),) = run_sql(
        url, "SELECT m.action, p.entry_hash FROM membership_entries m JOIN membership_entries p"
        " ON p.case_id = m.case_id AND p.seq = m.seq - 1 WHERE m.case_id = :c AND m.seq = :s",
        {"c": case_id, "s": seq})
    assert action == "remove"
    run_sql(url, "DELETE FROM membership_entries WHERE case_id = :c AND seq = :s",
            {"c": case_id, "s": seq})
    run_sql(url, "DELETE FROM key_grants WHERE case_id = :c AND generation = :g",
            {"c": case_id, "g": generation})
    run_sql(url, "UPDATE cases SET membership_seq = :s, membership_head = :h, generation = :g"
            " WHERE id = :c", {"c": case_id, "s": seq - 1, "h": prev_head, "g": generation - 1})
    run_sql(url, "INSERT INTO case_members (case_id, user_id, role, fingerprint, added_at)"
            " VALUES (:c, :u, :r, :f, :a)",
            dict(zip(("c", "u", "r", "f", "a"), member, strict=True)))


def member_row(url: str, case_id: str, uid: str) -> tuple:
    ((role, fingerprint, added_at),) = run_sql(
        url, "SELECT role, fingerprint, added_at FROM case_members WHERE case_id = :c AND "
        "user_id = :u", {"c": case_id, "u": uid})
    return (case_id, uid, role, fingerprint, added_at)


def uploads_of(url: str, case_id: str) -> tuple[int, int]:
    ((versions,),) = run_sql(url, "SELECT count(*) FROM file_versions WHERE case_id = :c",
                             {"c": case_id})
    ((sessions,),) = run_sql(url, "SELECT count(*) FROM upload_sessions WHERE case_id = :c",
                             {"c": case_id})
    return versions, sessions


def evidence_of(vault: Any, kind: str) -> list[str]:
    folder = vault.session.keystore.home / "evidence"
    return [p.read_text() for p in sorted(folder.glob(f"{kind}-*.txt"))]


@pytest.fixture
def three_lawyers(lawyer, app_settings):
    """Alice's case, Carol a co-owner and Bob an editor; Bob's keys kept as he held them."""
    alice, bob, carol = lawyer("alice"), lawyer("bob"), lawyer("carol")
    case_id = alice.create_case("R v Haddad")
    alice.share(case_id, "carol", role="owner")
    alice.share(case_id, "bob", role="editor")
    bob_keys = dict(bob._cases().load(case_id).keys)
    url = app_settings.resolved_database_url()
    return alice, bob, carol, case_id, bob_keys, url, member_row(url, case_id, user_id(bob))


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "strategy.txt"
    path.write_bytes(b"defence strategy after bob left")
    return path


def test_T26_own_revocation_hidden_put_refused(three_lawyers, live_server, tmp_path):
    alice, _bob, _carol, case_id, _keys, url, bob_row = three_lawyers
    alice.revoke(case_id, "bob")
    hide_last_removal(url, case_id, bob_row)
    before = uploads_of(url, case_id)

    proc = cli_put(alice, live_server, case_id, _secret(tmp_path))

    assert proc.returncode == 3, proc.stderr
    assert "IntegrityError" in proc.stderr and "evidence saved to" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert uploads_of(url, case_id) == before  # not a byte went up
    (text,) = evidence_of(alice, "membership-rollback")
    assert "lacks our own last entry" in text or "lacks the last entry seen" in text


def test_T26_co_owners_revocation_hidden_put_refused(three_lawyers, live_server, tmp_path):
    alice, _bob, carol, case_id, _keys, url, bob_row = three_lawyers
    carol.revoke(case_id, "bob")
    ((removal_hash,),) = run_sql(
        url, "SELECT entry_hash FROM membership_entries WHERE case_id = :c AND action = "
        "'remove'", {"c": case_id})
    hide_last_removal(url, case_id, bob_row)
    before = uploads_of(url, case_id)

    proc = cli_put(alice, live_server, case_id, _secret(tmp_path))

    assert proc.returncode == 3, proc.stderr
    assert "IntegrityError" in proc.stderr and "membership log does not hold" in proc.stderr
    assert uploads_of(url, case_id) == before
    (text,) = evidence_of(alice, "revocation-scan")
    # The evidence names the checkpoint, the range and the leaf of Carol's removal.
    assert "checkpoint:" in text and "range scanned:\n[" in text
    assert f" {removal_hash}" in text


def test_T26_concurrent_owners_put_uses_the_new_generation(three_lawyers, app, live_server,
                                                           tmp_path):
    """Honest server: Carol removes Bob after Alice's client loaded the case and before it
    encrypts. The scan sees Carol's entry, Alice reloads, and the file is under generation 1."""
    alice, _bob, carol, case_id, bob_keys, url, _row = three_lawyers
    app.seen.clear()
    app.before["/v1/log/checkpoint"] = lambda: carol.revoke(case_id, "bob")

    proc = cli_put(alice, live_server, case_id, _secret(tmp_path))

    assert proc.returncode == 0, proc.stderr
    (put,) = json.loads(proc.stdout)
    loads = [s for s in app.seen if s == f"GET /v1/cases/{case_id}/membership"]
    assert len(loads) >= 3  # Alice's load, Carol's, and Alice's reload after the scan
    ((wrapped, generation),) = run_sql(
        url, "SELECT wrapped_key, generation FROM file_versions WHERE file_id = :f",
        {"f": put["file_id"]})
    assert generation == 1
    for gen, key in bob_keys.items():
        with pytest.raises(IntegrityError):
            unwrap_file_key(b64d(wrapped), case_key=key, case_id=case_id,
                            file_id=put["file_id"], version=1, generation=gen)


def _drop_a_leaf(reply: dict) -> dict:
    return {**reply, "skeletons": reply["skeletons"][1:]}


def _wrong_frontier(reply: dict) -> dict:
    frontier = reply["frontier"]
    if frontier is None:
        return reply
    return {**reply, "frontier": [*frontier, b64e(bytes(32))]}


@pytest.mark.parametrize("change", [_drop_a_leaf, _wrong_frontier])
def test_T26_inconclusive_scan_put_refused(three_lawyers, app, live_server, lawyer, tmp_path,
                                           change):
    alice, _bob, _carol, case_id, _keys, url, _row = three_lawyers
    lawyer("dave").create_case("R v Other")  # new leaves for Alice's next scan to read
    if change is _wrong_frontier:
        # A client starting afresh (a new laptop) asks the server for the frontier.
        (alice.session.keystore.home / "revocation_scan.json").unlink()
    kept = alice.session.keystore.load_scan_state()
    app.rewrite["/v1/log/range"] = change
    before = uploads_of(url, case_id)

    proc = cli_put(alice, live_server, case_id, _secret(tmp_path))

    assert proc.returncode == 3, proc.stderr
    assert "revocation scan is inconclusive" in proc.stderr
    assert uploads_of(url, case_id) == before
    assert alice.session.keystore.load_scan_state() == kept  # the scan did not advance
    (text,) = evidence_of(alice, "revocation-scan")
    assert "checkpoint:" in text and "range scanned:\n[" in text
