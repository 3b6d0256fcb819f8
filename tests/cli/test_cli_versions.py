"""New versions of a file through the real CLI (`put CASE_ID PATH --file-id FILE_ID`), and the
rollback the operator then attempts by editing its database: `ls` and `get` refuse, exit 3,
print nothing and write nothing."""

from __future__ import annotations

import hashlib

EXIT_INTEGRITY = 3


def test_put_file_id_adds_a_version_and_a_hidden_one_is_caught(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Mensah")["case_id"]
    doc = alice.workdir / "statement.txt"
    doc.write_bytes(b"statement, first draft")
    (v1,) = alice.json("put", case_id, str(doc))
    doc.write_bytes(b"statement, as signed by the witness")
    (v2,) = alice.json("put", case_id, str(doc), "--file-id", v1["file_id"])
    assert (v2["file_id"], v2["version"]) == (v1["file_id"], 2)
    assert v2["sha256"] == hashlib.sha256(b"statement, as signed by the witness").hexdigest()
    (listed,) = alice.json("ls", case_id)
    assert (listed["version"], listed["sha256"]) == (2, v2["sha256"])
    old = alice.workdir / "v1.txt"
    alice.run("get", case_id, v1["file_id"], "--version", "1", "-o", str(old))
    assert old.read_bytes() == b"statement, first draft"

    # Usage mistakes are plain errors.
    assert "not a file id" in alice.fail("put", case_id, str(doc), "--file-id", "x").stderr
    missing = alice.fail("put", case_id, str(doc), "--file-id", "0" * 32)
    assert "no file" in missing.stderr

    # The operator hides version 2: the draft would pass for the signed statement.
    server.sql("DELETE FROM file_versions WHERE case_id = :c AND file_id = :f AND version = 2",
               {"c": case_id, "f": v1["file_id"]})
    server.sql("UPDATE files SET latest_version = 1 WHERE case_id = :c AND file_id = :f",
               {"c": case_id, "f": v1["file_id"]})
    ls = alice.fail("ls", case_id, "--json")
    assert ls.returncode == EXIT_INTEGRITY and ls.stdout == ""
    assert "the server is hiding a newer version" in ls.stderr
    assert v1["file_id"] in ls.stderr
    dest = alice.workdir / "current.txt"
    get = alice.fail("get", case_id, v1["file_id"], "-o", str(dest))
    assert get.returncode == EXIT_INTEGRITY and "hiding a newer version" in get.stderr
    assert not dest.exists()
