"""The whole lawyer workflow through the real `casevault` command against a real server."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from client import crypto
from client.vault import Vault
from vault.protocol.encoding import b64d
from vault.protocol.records import parse_manifest

PASSPHRASE = "correct horse battery staple"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_register_prints_enrolment_and_logs_in(lawyers) -> None:
    (alice,) = lawyers("alice")
    assert alice.totp_uri.startswith("otpauth://totp/")
    assert len(alice.recovery_code.replace("-", "")) == 36
    who = alice.json("whoami")
    assert who["username"] == alice.username
    # Local state: folder 0700, files 0600, and no unwrapped key material on disk.
    assert (alice.home.stat().st_mode & 0o777) == 0o700
    for path in alice.home.rglob("*"):
        if path.is_file():
            assert (path.stat().st_mode & 0o777) == 0o600, path
    profile = json.loads((alice.home / "profile.json").read_text())
    assert "kek" not in profile and "identity" not in profile


def test_json_flag_before_or_after_command(lawyers) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Jones")["case_id"]
    before = json.loads(alice.run("--json", "ls", case_id).stdout)
    after = json.loads(alice.run("ls", case_id, "--json").stdout)
    assert before == after == []
    cases = json.loads(alice.run("--json", "case", "list").stdout)
    assert {"case_id": case_id, "name": "R v Jones", "role": "owner", "hold": None} in cases


def test_two_lawyers_share_revoke_and_audit(lawyers, monkeypatch) -> None:
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Smith")["case_id"]
    empty = _write(alice.workdir / "empty.txt", b"")
    letter = _write(alice.workdir / "letter.txt", b"Privileged: client instructions")
    big = _write(alice.workdir / "cctv.bin", os.urandom(9 * 1024 * 1024 + 123))
    put = alice.json("put", case_id, str(empty), str(letter), str(big))
    assert [p["name"] for p in put] == ["empty.txt", "letter.txt", "cctv.bin"]
    assert [p["size"] for p in put] == [0, letter.stat().st_size, big.stat().st_size]
    assert [p["sha256"] for p in put] == [_sha(empty), _sha(letter), _sha(big)]

    # Sharing pins bob's key on first use and shows his safety number.
    bob_number = bob.json("fingerprint")["safety_number"]
    shared = alice.json("share", case_id, bob.username, "--role", "editor")
    assert shared["safety_number"] == bob_number and shared["first_seen"] is True
    assert {"username": bob.username, "role": "editor", "trust": "unverified"} in alice.json(
        "members", case_id)

    listing = bob.json("ls", case_id)
    assert sorted(f["name"] for f in listing) == ["cctv.bin", "empty.txt", "letter.txt"]
    assert {f["uploaded_by"] for f in listing} == {alice.username}
    for item in put:
        out = bob.workdir / f"got-{item['name']}"
        bob.run("get", case_id, item["file_id"], "-o", str(out))
        assert _sha(out) == item["sha256"]
    assert (bob.workdir / "got-cctv.bin").read_bytes() == big.read_bytes()

    # Bob uploads as an editor; alice reads it, attributed to bob by username.
    note = _write(bob.workdir / "note.txt", b"call the witness")
    (bob_put,) = bob.json("put", case_id, str(note))
    alice.run("get", case_id, bob_put["file_id"], "-o", str(alice.workdir / "note.txt"))
    assert (alice.workdir / "note.txt").read_bytes() == b"call the witness"
    assert any(f["uploaded_by"] == bob.username for f in alice.json("ls", case_id))

    # Keep what a revoked member walks away with: his unlocked identity and the case keys.
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")
    bob_vault = Vault(str(bob.home), passphrase=PASSPHRASE)
    old_keys = dict(bob_vault._cases().load(case_id).keys)

    revoked = alice.json("revoke", case_id, bob.username)
    assert revoked["generation"] == 1
    assert alice.json("members", case_id) == [{"username": alice.username, "role": "owner",
                                               "trust": "verified"}]
    refused = bob.fail("ls", case_id)
    assert "not a member" in refused.stderr
    bob.fail("get", case_id, put[1]["file_id"], "-o", str(bob.workdir / "again.txt"))
    assert not (bob.workdir / "again.txt").exists()

    # A file uploaded after the revocation uses the new generation: the old key opens nothing.
    secret = _write(alice.workdir / "new.txt", b"after revocation")
    (new_put,) = alice.json("put", case_id, str(secret))
    rows = alice.server.sql(
        "SELECT manifest_body, manifest_sig, wrapped_key, encrypted_metadata FROM file_versions"
        " WHERE case_id = :c AND file_id = :f", {"c": case_id, "f": new_put["file_id"]})
    manifest = parse_manifest({"body": rows[0][0], "sig": rows[0][1]})
    assert manifest.generation == 1 and set(old_keys) == {0}
    for generation in (0, 1):
        with pytest.raises(crypto.IntegrityError):
            crypto.unwrap_file_key(b64d(rows[0][2]), case_key=old_keys[0], case_id=case_id,
                                   file_id=new_put["file_id"], version=1, generation=generation)
    # Alice still reads everything, old and new.
    alice.run("get", case_id, new_put["file_id"], "-o", str(alice.workdir / "new-copy.txt"))
    assert (alice.workdir / "new-copy.txt").read_bytes() == b"after revocation"
    alice.run("get", case_id, put[1]["file_id"], "-o", str(alice.workdir / "letter-copy.txt"))

    # Audit: verified, usernames as actors, and the membership changes are there.
    events = alice.json("audit", case_id)
    assert events and all(set(e) == {"index", "time", "actor", "action", "target", "actor_trust",
                                      "target_path"}
                          for e in events)
    actions = [e["action"] for e in events]
    assert any("member:added" in a for a in actions)
    assert any("member:removed" in a for a in actions)
    assert {alice.username, bob.username} <= {e["actor"] for e in events}


def test_rm_hides_file_and_viewer_cannot_upload(lawyers) -> None:
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Brown")["case_id"]
    doc = _write(alice.workdir / "draft.txt", b"draft")
    (item,) = alice.json("put", case_id, str(doc))
    alice.json("share", case_id, bob.username, "--role", "viewer")
    viewer_doc = _write(bob.workdir / "x.txt", b"x")
    refused = bob.fail("put", case_id, str(viewer_doc))
    assert "viewer" in refused.stderr
    alice.run("rm", case_id, item["file_id"])
    assert alice.json("ls", case_id) == []
    assert bob.json("ls", case_id) == []


def test_errors_are_one_line_without_traceback(lawyers, server, tmp_path) -> None:
    (alice,) = lawyers("alice")
    alice.fail("ls", "not-a-case")
    missing = alice.fail("ls", "0" * 32)
    assert "not a member" in missing.stderr
    alice.extra_env["CASEVAULT_PASSPHRASE"] = "wrong passphrase"
    bad = alice.fail("case", "create", "X")
    assert "wrong passphrase" in bad.stderr
    alice.extra_env.clear()
    # Plain http to a non-loopback address is refused before anything is sent.
    alice.extra_env["CASEVAULT_SERVER"] = "http://192.0.2.1:8000"
    insecure = alice.fail("login", alice.username, "--totp", "123456")
    assert "https" in insecure.stderr
    alice.extra_env["CASEVAULT_SERVER"] = "http://127.0.0.1:9"
    down = alice.fail("login", alice.username, "--totp", "123456")
    assert "unreachable" in down.stderr
