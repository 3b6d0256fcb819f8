"""A lying server, played by editing its disk and database, is caught by `casevault`:
tampered, swapped and truncated blobs, and a substituted public key in the directory.
Each attack ends in one clear error line, a non-zero exit and no output file."""

from __future__ import annotations

import os

from client.crypto import Identity
from vault.protocol.encoding import b64d, parse_canonical

EXIT_INTEGRITY = 3
EXIT_KEY_CHANGED = 4


def _case_with_files(alice, *contents: bytes) -> tuple[str, list[dict]]:
    case_id = alice.json("case", "create", "R v Tampered")["case_id"]
    paths = []
    for i, data in enumerate(contents):
        path = alice.workdir / f"doc{i}.bin"
        path.write_bytes(data)
        paths.append(str(path))
    return case_id, alice.json("put", case_id, *paths)


def _assert_caught(lawyer, case_id: str, file_id: str) -> None:
    out = lawyer.workdir / "out.bin"
    proc = lawyer.fail("get", case_id, file_id, "-o", str(out))
    assert proc.returncode == EXIT_INTEGRITY, proc.stderr
    assert "failed verification" in proc.stderr
    assert not out.exists()
    # No partial or temporary plaintext left next to where the output would have gone.
    assert not [p for p in lawyer.workdir.iterdir() if p.name.startswith(".casevault-")]


def test_tampered_blob_is_caught(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    case_id, (item,) = _case_with_files(alice, os.urandom(200_000))
    blob = server.blob_path(case_id, item["file_id"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    _assert_caught(alice, case_id, item["file_id"])


def test_swapped_blobs_are_caught(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    # Same length, so nothing but the content gives the swap away.
    case_id, items = _case_with_files(alice, b"A" * 50_000, b"B" * 50_000)
    first = server.blob_path(case_id, items[0]["file_id"])
    second = server.blob_path(case_id, items[1]["file_id"])
    a, b = first.read_bytes(), second.read_bytes()
    assert len(a) == len(b)
    first.write_bytes(b)
    second.write_bytes(a)
    _assert_caught(alice, case_id, items[0]["file_id"])
    _assert_caught(alice, case_id, items[1]["file_id"])


def test_swapped_blob_rows_with_fixed_hashes_are_caught(lawyers, server) -> None:
    """A server that also rewrites its own size and hash columns still cannot pass the
    signed manifest: the blob hash is in a record it cannot sign."""
    (alice,) = lawyers("alice")
    case_id, items = _case_with_files(alice, b"first" * 1000, b"second" * 1000)
    rows = {
        item["file_id"]: server.sql(
            "SELECT blob_key, blob_size, blob_sha256 FROM file_versions "
            "WHERE case_id = :c AND file_id = :f", {"c": case_id, "f": item["file_id"]})[0]
        for item in items
    }
    (fa, ra), (fb, rb) = rows.items()
    update = ("UPDATE file_versions SET blob_key = :k, blob_size = :s, blob_sha256 = :h "
              "WHERE case_id = :c AND file_id = :f")
    # blob_key is unique: park one row on a placeholder key while the other takes its key.
    server.sql(update, {"k": "0" * 32, "s": rb[1], "h": rb[2], "c": case_id, "f": fa})
    server.sql(update, {"k": ra[0], "s": ra[1], "h": ra[2], "c": case_id, "f": fb})
    server.sql(update, {"k": rb[0], "s": rb[1], "h": rb[2], "c": case_id, "f": fa})
    _assert_caught(alice, case_id, fa)
    _assert_caught(alice, case_id, fb)


def test_truncated_blob_is_caught(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    case_id, items = _case_with_files(alice, os.urandom(300_000), os.urandom(300_000))
    for item in items:
        blob = server.blob_path(case_id, item["file_id"])
        blob.write_bytes(blob.read_bytes()[:-20_000])
    # As stored: the server's own store notices the short blob and says its copy is damaged;
    # the lawyer is told the file is unavailable, not that "the server failed".
    out = alice.workdir / "out.bin"
    proc = alice.fail("get", case_id, items[0]["file_id"], "-o", str(out))
    assert proc.returncode == EXIT_INTEGRITY, proc.stderr
    assert "failed verification" in proc.stderr and "damaged" in proc.stderr
    assert "unavailable" in proc.stderr and "server failed" not in proc.stderr
    assert not out.exists()
    assert not list((alice.home / "transfers").glob("*.blob"))
    # A blob gone from the disk altogether is the same clear refusal.
    server.blob_path(case_id, items[0]["file_id"]).unlink()
    proc = alice.fail("get", case_id, items[0]["file_id"], "-o", str(out))
    assert proc.returncode == EXIT_INTEGRITY and "damaged" in proc.stderr
    assert not out.exists()
    # A server that also rewrites its size column streams the short blob without complaint:
    # the client's signed manifest still names the true size and hash.
    server.sql("UPDATE file_versions SET blob_size = blob_size - 20000 "
               "WHERE case_id = :c AND file_id = :f", {"c": case_id, "f": items[1]["file_id"]})
    _assert_caught(alice, case_id, items[1]["file_id"])


def _substitute_identity(server, username: str) -> Identity:
    """The attacker's own key pair published under the victim's name and user id."""
    ((body, sig),) = server.sql(
        "SELECT identity_body, identity_sig FROM users WHERE username = :u", {"u": username})
    user_id = parse_canonical(b64d(body))["user_id"]
    fake = Identity.generate(user_id, username)
    record = fake.public_record()
    server.sql("UPDATE users SET identity_body = :b, identity_sig = :s WHERE username = :u",
               {"b": record["body"], "s": record["sig"], "u": username})
    return fake


def test_substituted_key_in_directory_is_caught(lawyers, server) -> None:
    alice, bob, carol = lawyers("alice", "bob", "carol")
    real_number = bob.json("fingerprint")["safety_number"]
    first = alice.json("case", "create", "R v First")["case_id"]
    alice.json("share", first, bob.username)  # pins bob's real key

    _substitute_identity(server, bob.username)
    second = alice.json("case", "create", "R v Second")["case_id"]

    # Alice pinned bob: the changed key is a hard stop, and nothing was shared.
    proc = alice.fail("share", second, bob.username)
    assert proc.returncode == EXIT_KEY_CHANGED
    assert "CHANGED" in proc.stderr and "trust" in proc.stderr
    assert alice.json("members", second) == [{"username": alice.username, "role": "owner",
                                             "trust": "verified"}]
    assert alice.json("fingerprint", bob.username)["safety_number"] == real_number

    # Carol never met bob, but compares the safety number bob read out: mismatch, refused.
    third = carol.json("case", "create", "R v Third")["case_id"]
    proc = carol.fail("share", third, bob.username, "--fingerprint", real_number)
    assert "does not match" in proc.stderr
    assert carol.json("members", third) == [{"username": carol.username, "role": "owner",
                                            "trust": "verified"}]

    # Bob's own client notices that the directory publishes a key that is not his.
    proc = bob.fail("whoami")
    assert "failed verification" in proc.stderr

    # `trust` with the real number refuses the substituted key too.
    proc = alice.fail("trust", bob.username, real_number)
    assert "does not match" in proc.stderr


def test_changed_key_accepted_only_after_trust(lawyers, server) -> None:
    alice, bob = lawyers("alice", "bob")
    first = alice.json("case", "create", "R v Rekey")["case_id"]
    alice.json("share", first, bob.username)
    fake = _substitute_identity(server, bob.username)
    second = alice.json("case", "create", "R v Rekey 2")["case_id"]
    assert alice.fail("share", second, bob.username).returncode == EXIT_KEY_CHANGED
    new_number = fake.record().safety_number
    trusted = alice.json("trust", bob.username, new_number)
    assert trusted["verified"] is True
    shared = alice.json("share", second, bob.username)
    assert shared["safety_number"] == new_number


def test_no_output_when_destination_exists(lawyers) -> None:
    (alice,) = lawyers("alice")
    case_id, (item,) = _case_with_files(alice, b"content")
    existing = alice.workdir / "exists.txt"
    existing.write_bytes(b"keep me")
    alice.fail("get", case_id, item["file_id"], "-o", str(existing))
    assert existing.read_bytes() == b"keep me"
