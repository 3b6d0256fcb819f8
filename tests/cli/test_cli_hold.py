"""`casevault hold` end to end against a real server: an owner places a hold, every view shows
it, `rm` is refused by the client, a server that erases a held file anyway is caught (exit 3)."""

from __future__ import annotations

REASON = "Litigation hold: R v Marsh, disclosure pending"


def _case_with_file(alice, bob, tmp_path):
    case_id = alice.json("case", "create", "R v Marsh")["case_id"]
    alice.run("share", case_id, bob.username, "--role", "editor")
    doc = alice.workdir / "note.txt"
    doc.write_text("attendance note")
    (put,) = alice.json("put", case_id, str(doc))
    return case_id, put["file_id"]


def test_hold_shown_rm_refused_then_release(lawyers, tmp_path):
    alice, bob = lawyers("alice", "bob")
    case_id, file_id = _case_with_file(alice, bob, tmp_path)

    assert alice.json("hold", case_id, "--reason", REASON) == {
        "case_id": case_id, "hold": True, "reason": REASON}

    (listed,) = bob.json("case", "list")
    assert listed["hold"] == REASON and set(listed) == {"case_id", "name", "role", "hold"}
    assert REASON in bob.run("case", "list").stdout
    members = bob.run("members", case_id).stdout.splitlines()
    assert members[0].startswith("LEGAL HOLD") and alice.username in members[0]
    ls = bob.run("ls", case_id)
    assert "LEGAL HOLD" in ls.stderr and REASON in ls.stderr
    assert [f["file_id"] for f in bob.json("ls", case_id)] == [file_id]  # JSON shape unchanged

    refused = bob.fail("rm", case_id, file_id)
    assert refused.returncode == 1 and "legal hold" in refused.stderr
    assert [f["file_id"] for f in alice.json("ls", case_id)] == [file_id]

    # Only an owner holds or releases; the editor's client refuses before signing.
    assert "only an owner" in bob.fail("hold", case_id, "--release").stderr

    assert alice.json("hold", case_id, "--release") == {
        "case_id": case_id, "hold": False, "reason": REASON}
    assert alice.json("case", "list")[0]["hold"] is None
    assert "LEGAL HOLD" not in bob.run("ls", case_id).stderr
    bob.run("rm", case_id, file_id)
    assert alice.json("ls", case_id) == []
    actions = [e["action"] for e in alice.json("audit", case_id)]
    assert actions.index("case:hold:placed") < actions.index("case:hold:released")


def test_server_erasing_a_held_file_is_caught(lawyers, server, tmp_path):
    alice, bob = lawyers("alice", "bob")
    case_id, file_id = _case_with_file(alice, bob, tmp_path)
    alice.run("hold", case_id, "--reason", REASON)
    assert [f["file_id"] for f in bob.json("ls", case_id)] == [file_id]

    # The operator ignores the hold: rows and blob gone from its disk.
    blob = server.blob_path(case_id, file_id)
    server.sql("DELETE FROM file_versions WHERE case_id = :c AND file_id = :f",
               {"c": case_id, "f": file_id})
    server.sql("DELETE FROM files WHERE case_id = :c AND file_id = :f",
               {"c": case_id, "f": file_id})
    blob.unlink()

    caught = bob.fail("ls", case_id)
    assert caught.returncode == 3 and file_id in caught.stderr


def test_hold_needs_reason_or_release(lawyers, tmp_path):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Usage")["case_id"]
    assert alice.run("hold", case_id, check=False).returncode == 2  # argparse: one of the two
    bad = alice.fail("hold", case_id, "--reason", "line one\nline two")
    assert bad.returncode == 1 and "plain text" in bad.stderr
