"""The whole lawyer workflow through the real `casevault` command against a real server."""

from __future__ import annotations

import hashlib
from pathlib import Path



def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_register_create_put_ls_get(lawyers) -> None:
    (alice,) = lawyers("alice")
    who = alice.json("whoami")
    assert who["username"] == alice.username
    case_id = alice.json("case", "create", "R v Smith")["case_id"]
    doc = _write(alice.workdir / "statement.txt", b"the defendant was at home")
    put = alice.json("put", case_id, str(doc))
    assert put[0]["name"] == "statement.txt"
    assert put[0]["sha256"] == hashlib.sha256(doc.read_bytes()).hexdigest()
    listing = alice.json("ls", case_id)
    assert listing[0]["uploaded_by"] == alice.username
    out = alice.workdir / "copy.txt"
    alice.run("get", case_id, put[0]["file_id"], "-o", str(out))
    assert out.read_bytes() == doc.read_bytes()
