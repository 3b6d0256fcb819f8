"""Grants, generation links, metadata and file-key wraps: each bound to where it belongs."""

from __future__ import annotations

import pytest

from client.crypto import (
    CaseMetadata,
    FileMetadata,
    Identity,
    IntegrityError,
    decrypt_case_metadata,
    decrypt_file_metadata,
    encrypt_case_metadata,
    encrypt_file_metadata,
    make_key_link,
    new_case_key,
    new_file_key,
    open_grant,
    open_key_link,
    seal_grant,
    unwrap_file_key,
    verify_download_manifest,
    wrap_file_key,
)
from client.crypto.keys import hpke_public_key
from client.crypto.seal import HPKE_SUITE, grant_info
from vault.protocol import records as r
from vault.protocol.encoding import b64d, b64e, canonical_json, parse_canonical
from vault.protocol.ids import new_id


def test_grant_roundtrip(CaseLog, alice, bob):
    log = CaseLog(alice).append(alice, "add", bob, "editor")
    key = new_case_key()
    g = seal_grant(
        case_key=key, case_id=log.case_id, generation=0, member=bob.record(), granter=alice, now=10
    )
    assert open_grant(g, identity=bob, state=log.state(), identities=log.identities) == key


def test_grant_signed_by_non_owner_is_refused(CaseLog, alice, bob, carol):
    log = CaseLog(alice).append(alice, "add", bob, "editor").append(alice, "add", carol, "viewer")
    # bob (an editor) seals a key of his choosing to carol: she must not accept it.
    g = seal_grant(
        case_key=new_case_key(),
        case_id=log.case_id,
        generation=0,
        member=carol.record(),
        granter=bob,
    )
    with pytest.raises(IntegrityError):
        open_grant(g, identity=carol, state=log.state(), identities=log.identities)


def test_forged_grant_from_the_server_is_refused(CaseLog, alice, bob):
    log = CaseLog(alice).append(alice, "add", bob, "viewer")
    good = seal_grant(
        case_key=new_case_key(),
        case_id=log.case_id,
        generation=0,
        member=bob.record(),
        granter=alice,
    )
    # HPKE has no sender authentication: the server seals its own key to bob and pastes it
    # into alice's grant. The owner signature no longer matches.
    info = grant_info(log.case_id, 0, bob.user_id, bob.record().fingerprint_hex)
    server_key = new_case_key()
    sealed = HPKE_SUITE.encrypt(server_key, hpke_public_key(bob.kem_pk), info=info)
    body = parse_canonical(b64d(good["body"]))
    body["sealed_key"] = b64e(sealed)
    forged = {"body": b64e(canonical_json(body)), "sig": good["sig"]}
    with pytest.raises(IntegrityError):
        open_grant(forged, identity=bob, state=log.state(), identities=log.identities)


def test_grant_info_binds_generation(CaseLog, alice, bob):
    # An owner re-signs a generation-0 grant as generation 1: the signature and the authority
    # check pass, but the HPKE info differs, so the sealed key does not open.
    log = CaseLog(alice).append(alice, "add", bob, "viewer")
    old = seal_grant(
        case_key=new_case_key(),
        case_id=log.case_id,
        generation=0,
        member=bob.record(),
        granter=alice,
    )
    eve = Identity.generate(new_id(), "eve", now=4)
    log.append(alice, "add", eve, "viewer").append(
        alice, "remove", eve, "viewer", key_link=b"\x01" * 72
    )
    body = parse_canonical(b64d(old["body"]))
    body["generation"] = 1
    moved = alice.sign(r.LABEL_GRANT, body)
    with pytest.raises(IntegrityError):
        open_grant(moved, identity=bob, state=log.state(), identities=log.identities)


def test_grant_for_someone_else_is_refused(CaseLog, alice, bob, carol):
    log = CaseLog(alice).append(alice, "add", bob, "viewer").append(alice, "add", carol, "viewer")
    g = seal_grant(
        case_key=new_case_key(),
        case_id=log.case_id,
        generation=0,
        member=bob.record(),
        granter=alice,
    )
    with pytest.raises(IntegrityError):
        open_grant(g, identity=carol, state=log.state(), identities=log.identities)
    with pytest.raises(IntegrityError):
        open_grant(g, identity=bob, state=log.state(), identities=log.identities, generation=1)


def test_key_link_roundtrip_and_binding():
    case_id, old, new = new_id(), new_case_key(), new_case_key()
    link = make_key_link(new_key=new, old_key=old, case_id=case_id, new_generation=3)
    assert open_key_link(link, new_key=new, case_id=case_id, new_generation=3) == old
    for kwargs in (
        {"case_id": new_id(), "new_generation": 3},
        {"case_id": case_id, "new_generation": 4},
    ):
        with pytest.raises(IntegrityError):
            open_key_link(link, new_key=new, **kwargs)
    with pytest.raises(IntegrityError):
        open_key_link(link, new_key=old, case_id=case_id, new_generation=3)


def test_case_metadata_roundtrip_and_binding():
    key, case_id = new_case_key(), new_id()
    meta = CaseMetadata("R v. Doe", "appeal bundle")
    blob = encrypt_case_metadata(meta, case_key=key, case_id=case_id, generation=0)
    assert decrypt_case_metadata(blob, case_key=key, case_id=case_id, generation=0) == meta
    with pytest.raises(IntegrityError):
        decrypt_case_metadata(blob, case_key=key, case_id=new_id(), generation=0)
    with pytest.raises(IntegrityError):
        decrypt_case_metadata(blob, case_key=key, case_id=case_id, generation=1)


COORDS = {"case_id": new_id(), "file_id": new_id(), "version": 2}


@pytest.mark.parametrize(
    "swap", [{"case_id": new_id()}, {"file_id": new_id()}, {"version": 3}, {"generation": 1}]
)
def test_file_key_wrap_is_bound_to_case_file_version_generation(swap):
    case_key, file_key = new_case_key(), new_file_key()
    wrapped = wrap_file_key(file_key, case_key=case_key, generation=0, **COORDS)
    assert unwrap_file_key(wrapped, case_key=case_key, generation=0, **COORDS) == file_key
    with pytest.raises(IntegrityError):
        unwrap_file_key(wrapped, case_key=case_key, **{"generation": 0, **COORDS, **swap})


@pytest.mark.parametrize("swap", [{"case_id": new_id()}, {"file_id": new_id()}, {"version": 3}])
def test_file_metadata_is_bound_to_case_file_version(swap):
    file_key = new_file_key()
    meta = FileMetadata("interview.m4a", 123, "ab" * 32, "audio/mp4", 1700000000, "client call")
    blob = encrypt_file_metadata(meta, file_key=file_key, **COORDS)
    assert decrypt_file_metadata(blob, file_key=file_key, **COORDS) == meta
    with pytest.raises(IntegrityError):
        decrypt_file_metadata(blob, file_key=file_key, **{**COORDS, **swap})
    with pytest.raises(IntegrityError):
        decrypt_file_metadata(blob, file_key=new_file_key(), **COORDS)


def _manifest(uploader, log, seq, file_id):
    body = r.manifest_body(
        case_id=log.case_id,
        file_id=file_id,
        version=1,
        generation=0,
        membership_seq=seq,
        blob_size=1,
        blob_sha256="a" * 64,
        meta_hash="b" * 64,
        wrapped_key_hash="c" * 64,
        uploader=uploader.user_id,
        time=5,
    )
    return uploader.sign(r.LABEL_MANIFEST, body)


def test_download_manifest_checks(CaseLog, alice, bob, carol):
    log = CaseLog(alice).append(alice, "add", bob, "editor").append(alice, "add", carol, "viewer")
    fid = new_id()
    m = verify_download_manifest(
        _manifest(bob, log, 2, fid),
        state=log.state(),
        identities=log.identities,
        case_id=log.case_id,
        file_id=fid,
    )
    assert m.uploader == bob.user_id
    # Uploader not a member (at that point), or a viewer: refused with the one error class.
    for who, seq in ((bob, 0), (carol, 2)):
        with pytest.raises(IntegrityError, match="failed verification"):
            verify_download_manifest(
                _manifest(who, log, seq, fid),
                state=log.state(),
                identities=log.identities,
                case_id=log.case_id,
                file_id=fid,
            )
    # The server answers a request for one file with another file's valid manifest.
    with pytest.raises(IntegrityError):
        verify_download_manifest(
            _manifest(bob, log, 2, new_id()),
            state=log.state(),
            identities=log.identities,
            case_id=log.case_id,
            file_id=fid,
        )
