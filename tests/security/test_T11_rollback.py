"""T11: the server rolls a file back: it answers a request for version 2 with version 1 (its
manifest, metadata, wrapped key and blob), hoping the lawyer reads the superseded draft as the
current one. Version 2 itself is genuine and signed by Bob, an editor."""

from __future__ import annotations

import pytest
from attack_kit import open_blob, seal_file, tampered

from client.crypto.errors import IntegrityError
from client.crypto.seal import (
    decrypt_file_metadata,
    unwrap_file_key,
    verify_download_manifest,
    wrap_file_key,
)
from vault.protocol.records import LABEL_MANIFEST, manifest_body, sha256_hex


def _version(case, uploader, plaintext, version, file_id=None):
    sealed = seal_file(
        plaintext, case_id=case.case_id, file_id=file_id, version=version, name="plea.txt"
    )
    wrapped = wrap_file_key(
        sealed.file_key,
        case_key=case.keys[0],
        case_id=case.case_id,
        file_id=sealed.file_id,
        version=version,
        generation=0,
    )
    body = manifest_body(
        case_id=case.case_id,
        file_id=sealed.file_id,
        version=version,
        generation=0,
        membership_seq=len(case.entries) - 1,
        blob_size=len(sealed.blob),
        blob_sha256=sha256_hex(sealed.blob),
        meta_hash=sha256_hex(sealed.meta),
        wrapped_key_hash=sha256_hex(wrapped),
        uploader=uploader.user_id,
        time=1_700_000_400,
    )
    return sealed, wrapped, uploader.sign(LABEL_MANIFEST, body)


def test_T11_old_version_served_for_newer_one_fails(case, people, tmp_path):
    bob = people["bob"]
    v1, wrapped1, manifest1 = _version(case, bob, b"plea: not guilty (draft)", 1)
    v2, wrapped2, manifest2 = _version(case, bob, b"plea: guilty to lesser count", 2, v1.file_id)
    state, ids = case.state(), case.identities
    coords = {"case_id": case.case_id, "file_id": v1.file_id}
    # Honest: version 2's manifest verifies as version 2.
    assert (
        verify_download_manifest(
            manifest2, state=state, identities=ids, version=2, **coords
        ).version
        == 2
    )
    # Rolled back: version 1's manifest handed out for version 2.
    with pytest.raises(IntegrityError):
        verify_download_manifest(manifest1, state=state, identities=ids, version=2, **coords)
    # Rewriting the version inside version 1's manifest breaks Bob's signature.
    relabelled = tampered(manifest1, version=2)
    with pytest.raises(IntegrityError):
        verify_download_manifest(relabelled, state=state, identities=ids, version=2, **coords)
    # The lower layers each refuse version 1's pieces under version 2's coordinates too.
    with pytest.raises(IntegrityError):
        unwrap_file_key(wrapped1, case_key=case.keys[0], generation=0, version=2, **coords)
    with pytest.raises(IntegrityError):
        decrypt_file_metadata(v1.meta, file_key=v1.file_key, version=2, **coords)
    with pytest.raises(IntegrityError):
        open_blob(v1, v1.blob, tmp_path / "plea.txt", version=2)
    assert not (tmp_path / "plea.txt").exists()
