"""`casevault custody` end to end against a real server: the intake record `put` seals (with
--source and --note), and every verified event of the file, a colleague's download included,
each with its log index; `audit` names files by their decrypted paths."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

SOURCE = "USB stick handed over by the client, exhibit AB/1"
NOTE = "Received in person at the police station"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_custody_shows_intake_upload_and_download(lawyers):
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Custody")["case_id"]
    alice.run("share", case_id, bob.username, "--role", "viewer")
    evidence = alice.workdir / "Interview ÄB.txt"
    evidence.write_bytes(b"interview transcript, page 1\n")
    os.utime(evidence, (1_600_000_000, 1_600_000_000))
    (put,) = alice.json("put", case_id, str(evidence), "--to", "Exhibits", "--source", SOURCE,
                        "--note", NOTE)
    # The put result keeps its keys: the intake travels sealed, not in the output.
    assert set(put) == {"file_id", "version", "name", "size", "sha256", "path",
                        "unverified_members"}
    file_id = put["file_id"]
    bob.run("get", case_id, file_id, "-o", str(bob.workdir / "copy.txt"))

    custody = bob.json("custody", case_id, file_id)
    assert set(custody) == {"file_id", "path", "intake", "versions", "events"}
    assert custody["file_id"] == file_id and custody["path"] == "Exhibits/Interview ÄB.txt"
    intake = custody["intake"]
    assert intake["sha256"] == hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert intake["original_name"] == "Interview ÄB.txt"
    assert intake["original_mtime"] == _iso(1_600_000_000)
    assert intake["taken_in_by"] == alice.username
    assert (intake["source"], intake["note"]) == (SOURCE, NOTE)
    assert intake["client_version"].startswith("casevault")
    (version,) = custody["versions"]
    assert version["version"] == 1 and version["uploaded_by"] == alice.username
    assert version["sha256"] == intake["sha256"] and version["intake"] == intake

    by_action = {e["action"]: e for e in custody["events"]}
    upload = by_action["file:version:uploaded"]
    download = by_action["file:version:downloaded"]
    assert upload["actor"] == alice.username and upload["version"] == 1
    assert upload["index"] == version["log_index"]
    assert download["actor"] == bob.username and download["version"] == 1
    assert download["index"] > upload["index"] and download["time"] >= upload["time"]
    # The same indexes as the case's verified audit trail, which names the file's path.
    audit = {e["index"]: e for e in alice.json("audit", case_id)}
    assert audit[download["index"]]["action"] == "file:version:downloaded"
    assert audit[download["index"]]["target_path"] == "Exhibits/Interview ÄB.txt"
    assert "Exhibits/Interview ÄB.txt" in alice.run("audit", case_id).stdout

    human = bob.run("custody", case_id, file_id).stdout
    assert SOURCE in human and NOTE in human and bob.username in human
    assert f"log entry {upload['index']}" in human


def test_new_version_has_its_own_intake(lawyers):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Versions")["case_id"]
    doc = alice.workdir / "statement.txt"
    doc.write_text("first draft")
    (first,) = alice.json("put", case_id, str(doc), "--source", "client email")
    doc.write_text("signed statement")
    alice.json("put", case_id, str(doc), "--file-id", first["file_id"], "--note", "signed copy")

    custody = alice.json("custody", case_id, first["file_id"])
    v1, v2 = custody["versions"]
    assert (v1["intake"]["source"], v1["intake"]["note"]) == ("client email", "")
    assert (v2["intake"]["source"], v2["intake"]["note"]) == ("", "signed copy")
    assert v2["intake"]["sha256"] == hashlib.sha256(b"signed statement").hexdigest()
    assert custody["intake"] == v2["intake"]
    uploads = [e for e in custody["events"] if e["action"] == "file:version:uploaded"]
    assert [e["version"] for e in uploads] == [1, 2]


def test_a_control_character_in_the_note_is_refused_before_upload(lawyers):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Note")["case_id"]
    doc = alice.workdir / "a.txt"
    doc.write_text("a")
    refused = alice.fail("put", case_id, str(doc), "--note", "line\x1b[2Jcleared")
    assert refused.returncode == 1 and "--note" in refused.stderr
    assert alice.json("ls", case_id) == []
