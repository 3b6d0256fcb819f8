"""T10: a file injected into a case by someone without upload rights: an outsider, a viewer,
a removed editor, or the server itself.

The server refuses such uploads; independently, the downloading client checks the manifest's
signature against the uploader's pinned key and the uploader's role at the membership position
the manifest names, replaying the signed membership log itself.
"""

from __future__ import annotations

import httpx
import pytest
from attack_kit import bearer, resigned, seal_file

from client.crypto.errors import IntegrityError
from client.crypto.seal import verify_download_manifest
from client.errors import VaultError
from vault.protocol.ids import new_id
from vault.protocol.records import LABEL_MANIFEST, manifest_body, sha256_hex


def _manifest(case, uploader, sealed, *, seq=None, generation=0):
    body = manifest_body(
        case_id=case.case_id,
        file_id=sealed.file_id,
        version=1,
        generation=generation,
        membership_seq=len(case.entries) - 1 if seq is None else seq,
        blob_size=len(sealed.blob),
        blob_sha256=sha256_hex(sealed.blob),
        meta_hash=sha256_hex(sealed.meta),
        wrapped_key_hash=sha256_hex(b"wrapped"),
        uploader=uploader.user_id,
        time=1_700_000_300,
    )
    return uploader.sign(LABEL_MANIFEST, body)


def _verify(case, manifest, sealed):
    return verify_download_manifest(
        manifest,
        state=case.state(),
        identities=case.identities,
        case_id=case.case_id,
        file_id=sealed.file_id,
        version=1,
    )


@pytest.fixture
def planted(case):
    return seal_file(b"planted 'evidence'", case_id=case.case_id)


def test_T10_editor_manifest_accepted(case, people, planted):
    assert _verify(case, _manifest(case, people["bob"], planted), planted).uploader


def test_T10_client_refuses_manifest_from_non_member_or_viewer(case, people, planted):
    for uploader in (people["mallory"], people["vera"]):
        with pytest.raises(IntegrityError):
            _verify(case, _manifest(case, uploader, planted), planted)


def test_T10_client_refuses_manifest_forged_in_an_editors_name(case, people, planted):
    # The server names Bob as uploader but cannot sign with Bob's key.
    genuine = _manifest(case, people["bob"], planted)
    forged = resigned(genuine, LABEL_MANIFEST, people["mallory"], blob_sha256="0" * 64)
    with pytest.raises(IntegrityError):
        _verify(case, forged, planted)


def test_T10_client_refuses_manifest_of_removed_editor_after_removal(case, people, planted):
    case.remove(people["bob"])
    # Bob signs at the current position (after his removal) with the new generation.
    with pytest.raises(IntegrityError):
        _verify(case, _manifest(case, people["bob"], planted, generation=1), planted)


def test_T10_client_refuses_manifest_naming_a_future_membership_position(case, people, planted):
    with pytest.raises(IntegrityError):
        _verify(case, _manifest(case, people["bob"], planted, seq=len(case.entries)), planted)


def test_T10_client_refuses_manifest_with_stale_generation(case, people, planted):
    # After a removal, an upload under the old generation (which the removed member still
    # holds) is refused: new files must use the key the removed member does not have.
    case.remove(people["vera"])
    with pytest.raises(IntegrityError):
        _verify(case, _manifest(case, people["bob"], planted, generation=0), planted)


def test_T10_server_refuses_upload_by_non_member_or_viewer(lawyer, live_server, tmp_path):
    alice, vera, mallory = lawyer("alice"), lawyer("vera"), lawyer("mallory")
    case_id = alice.create_case("R v Petrov")
    alice.share(case_id, "vera", role="viewer")
    start = {"file_id": new_id(), "version": 1, "total_size": 10, "part_size": 10}
    with httpx.Client(base_url=live_server, timeout=30) as http:
        as_viewer = http.post(f"/v1/cases/{case_id}/uploads", json=start, headers=bearer(vera))
        as_outsider = http.post(f"/v1/cases/{case_id}/uploads", json=start, headers=bearer(mallory))
    assert as_viewer.status_code == 403
    assert as_outsider.status_code == 404  # the same answer as for a case that does not exist
    # The client refuses before it even asks, and nothing appeared in the case.
    doc = tmp_path / "planted.txt"
    doc.write_bytes(b"planted")
    with pytest.raises(VaultError):
        vera.put(case_id, [doc])
    assert alice.ls(case_id) == []
