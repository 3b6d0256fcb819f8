"""T11 against a real server: the operator edits its own database to roll a file back. Every
edit below passes the server's checks (what is left is genuine, signed data), so only the
client's memory of what it verified can catch it: the highest version of each file and the
deletions it has seen, kept in CASEVAULT_HOME."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from client.crypto.errors import IntegrityError


def _sql(database_url: str, statement: str, **params: object) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


@pytest.fixture
def two_versions(lawyer, tmp_path):
    """Alice's case with plea.txt at version 2 (version 1: the superseded draft)."""
    alice = lawyer("alice")
    case_id = alice.create_case("R v Okafor")
    doc = tmp_path / "plea.txt"
    doc.write_bytes(b"plea: not guilty (draft)")
    (v1,) = alice.put(case_id, [doc])
    doc.write_bytes(b"plea: guilty to the lesser count, final")
    (v2,) = alice.put(case_id, [doc], file_id=v1["file_id"])
    assert (v2["file_id"], v2["version"]) == (v1["file_id"], 2)
    return alice, case_id, v1["file_id"]


def test_T11_server_hiding_newer_version_is_caught(two_versions, database_url, tmp_path):
    alice, case_id, file_id = two_versions
    (listed,) = alice.ls(case_id)
    assert listed["version"] == 2

    # The attack: version 2 disappears and the file's head points at version 1 again, so the
    # server would present the draft as the current plea.
    _sql(database_url, "DELETE FROM file_versions WHERE case_id = :c AND file_id = :f "
         "AND version = 2", c=case_id, f=file_id)
    _sql(database_url, "UPDATE files SET latest_version = 1 WHERE case_id = :c AND "
         "file_id = :f", c=case_id, f=file_id)

    with pytest.raises(IntegrityError, match=f"{file_id}.*hiding a newer version"):
        alice.ls(case_id)
    out = tmp_path / "out" / "plea.txt"
    out.parent.mkdir()
    with pytest.raises(IntegrityError, match="hiding a newer version"):
        alice.get(case_id, file_id, output=out)
    with pytest.raises(IntegrityError, match="hiding a newer version"):
        alice.get(case_id, file_id, output=out, version=1)
    assert list(out.parent.iterdir()) == []


def test_T11_server_hiding_a_whole_file_is_caught(two_versions, database_url):
    alice, case_id, file_id = two_versions
    assert [f["file_id"] for f in alice.ls(case_id)] == [file_id]
    # No tombstone: the file and its versions are simply gone from the listing.
    _sql(database_url, "DELETE FROM file_versions WHERE case_id = :c AND file_id = :f",
         c=case_id, f=file_id)
    _sql(database_url, "DELETE FROM files WHERE case_id = :c AND file_id = :f",
         c=case_id, f=file_id)
    with pytest.raises(IntegrityError, match=f"{file_id}.*hiding a file"):
        alice.ls(case_id)


def test_T11_server_undoing_a_verified_deletion_is_caught(two_versions, database_url):
    alice, case_id, file_id = two_versions
    alice.rm(case_id, file_id)
    assert alice.ls(case_id) == []  # an honest, signed deletion is no alarm
    _sql(database_url, "UPDATE file_versions SET deleted = :f WHERE case_id = :c",
         f=False, c=case_id)
    _sql(database_url, "UPDATE files SET deleted_at = NULL, deleted_by = NULL, "
         "tombstone_body = NULL, tombstone_sig = NULL WHERE case_id = :c", c=case_id)
    with pytest.raises(IntegrityError, match=f"{file_id}.*hiding its deletion"):
        alice.ls(case_id)


def test_T11_memory_is_private_and_only_rises(two_versions):
    """The memory lives in the keystore (0600), and a stale write cannot lower it."""
    alice, case_id, file_id = two_versions
    ks = alice.keystore
    assert ks.files_seen(case_id) == {file_id: {"version": 2, "deleted": False}}
    ks.record_files_seen(case_id, {file_id: (1, False)})
    assert ks.files_seen(case_id)[file_id]["version"] == 2
    (path,) = (ks.home / "cases").glob(f"{case_id}.files.json")
    assert path.stat().st_mode & 0o777 == 0o600
