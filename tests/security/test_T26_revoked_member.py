"""T26: a co-counsel is removed from the case and tries to keep reading new material, through
the API or, with the server's help, from the raw blobs and wrapped keys."""

from __future__ import annotations

import pytest
from attack_kit import run_sql

from client.crypto.errors import IntegrityError
from client.crypto.seal import unwrap_file_key
from client.errors import NotAMember
from vault.protocol.encoding import b64d


def test_T26_revoked_member_cannot_read_new_files(lawyer, app_settings, tmp_path):
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Brennan")
    old = tmp_path / "old.txt"
    old.write_bytes(b"before revocation")
    (old_file,) = alice.put(case_id, [old])
    alice.share(case_id, "bob", role="editor")
    # What Bob holds before removal: every key generation he was given.
    bob_keys = dict(bob._cases().load(case_id).keys)
    assert set(bob_keys) == {0}

    alice.revoke(case_id, "bob")
    new = tmp_path / "new.txt"
    new.write_bytes(b"after revocation: new defence strategy")
    (new_file,) = alice.put(case_id, [new])

    # Through the API the case is gone for Bob, as if it never existed.
    with pytest.raises(NotAMember):
        bob.ls(case_id)
    with pytest.raises(NotAMember):
        bob.get(case_id, new_file["file_id"], output=tmp_path / "stolen.txt", version=None)
    assert not (tmp_path / "stolen.txt").exists()

    # With the server's collusion Bob gets the new file's wrapped key: none of his keys opens it.
    ((wrapped, generation),) = run_sql(
        app_settings.resolved_database_url(),
        "SELECT wrapped_key, generation FROM file_versions WHERE file_id = :f",
        {"f": new_file["file_id"]},
    )
    assert generation == 1
    for gen, key in bob_keys.items():
        for claimed in (generation, gen):
            with pytest.raises(IntegrityError):
                unwrap_file_key(
                    b64d(wrapped),
                    case_key=key,
                    case_id=case_id,
                    file_id=new_file["file_id"],
                    version=1,
                    generation=claimed,
                )
    # The remaining owner still reads both, old through the key link.
    assert {f["name"] for f in alice.ls(case_id)} == {"old.txt", "new.txt"}
    assert old_file["file_id"] in {f["file_id"] for f in alice.ls(case_id)}
