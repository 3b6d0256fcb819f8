"""T14: a hostile server mauls what it stores (wrapped keys, sealed grants, wrapped identities,
metadata, content) and watches the client, hoping that different failures look different.

Every mauling of one kind of object must give exactly the same exception type and message as
every other mauling of it, and the same as a plain wrong key: nothing says *why* it failed.
"""

from __future__ import annotations

import pytest
from attack_kit import body_of, run_sql, seal_file, tampered

from client.crypto.errors import IntegrityError
from client.crypto.keys import PURPOSE_KEK, unwrap_identity, wrap_identity
from client.crypto.seal import (
    decrypt_file_metadata,
    new_case_key,
    open_grant,
    seal_grant,
    unwrap_file_key,
    wrap_file_key,
)
from vault.protocol.encoding import b64d, b64e


def _maulings(data: bytes) -> list[bytes]:
    """Flips at the start, middle, end; truncations; extensions; emptiness; garbage."""
    out = []
    for position in (0, 1, len(data) // 2, len(data) - 17, len(data) - 1):
        mauled = bytearray(data)
        mauled[position] ^= 0x40
        out.append(bytes(mauled))
    out += [data[:-1], data[:-16], data[:24], data[:40], b"", data + b"\x00", bytes(len(data))]
    out.append(b"\xff" * len(data))
    return out


def _messages(call, variants) -> set[tuple[type, str]]:
    seen = set()
    for variant in variants:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the type is what is checked
            call(variant)
        seen.add((type(info.value), str(info.value)))
    return seen


def test_T14_mauled_wrapped_file_keys_give_one_uniform_error():
    case_key, file_key = new_case_key(), new_case_key()
    coords = {"case_id": "a" * 32, "file_id": "b" * 32, "version": 1, "generation": 0}
    wrapped = wrap_file_key(file_key, case_key=case_key, **coords)
    seen = _messages(lambda w: unwrap_file_key(w, case_key=case_key, **coords), _maulings(wrapped))
    seen |= _messages(lambda _: unwrap_file_key(wrapped, case_key=new_case_key(), **coords), [None])
    assert seen == {(IntegrityError, "file key failed verification")}


def test_T14_mauled_wrapped_identity_same_as_wrong_passphrase(people):
    alice = people["alice"]
    kek = new_case_key()
    wrapped = wrap_identity(alice, kek, PURPOSE_KEK)
    uid = alice.user_id
    seen = _messages(lambda w: unwrap_identity(w, kek, uid, PURPOSE_KEK), _maulings(wrapped))
    # A wrong passphrase (a wrong kek) must look exactly like a mauled record.
    wrong_kek = new_case_key()
    seen |= _messages(lambda _: unwrap_identity(wrapped, wrong_kek, uid, PURPOSE_KEK), [None])
    assert seen == {(IntegrityError, "identity failed verification")}


def test_T14_mauled_grants_give_one_uniform_error(case, people):
    bob = people["bob"]
    grant = seal_grant(
        case_key=case.keys[0],
        case_id=case.case_id,
        generation=0,
        member=bob.record(),
        granter=people["alice"],
    )
    # The server cannot re-sign, so a mauled seal keeps Alice's signature; add a zeroed one.
    sealed = b64d(body_of(grant)["sealed_key"])
    variants = [tampered(grant, sealed_key=b64e(m)) for m in _maulings(sealed) if m]
    variants.append({"body": grant["body"], "sig": b64e(bytes(64))})
    state, ids = case.state(), case.identities
    seen = _messages(lambda g: open_grant(g, identity=bob, state=state, identities=ids), variants)
    assert seen == {(IntegrityError, "key grant failed verification")}


def test_T14_mauled_metadata_gives_one_uniform_error():
    f = seal_file(b"note to file")
    coords = {"case_id": f.case_id, "file_id": f.file_id, "version": 1}
    seen = _messages(
        lambda m: decrypt_file_metadata(m, file_key=f.file_key, **coords), _maulings(f.meta)
    )
    assert seen == {(IntegrityError, "file metadata failed verification")}


def test_T14_client_does_not_retry_a_failed_decryption(lawyer, app_settings, tmp_path):
    # The server flips one byte of a stored blob and counts how often the client comes back.
    alice = lawyer("alice")
    case_id = alice.create_case("R v Moreau")
    doc = tmp_path / "memo.txt"
    doc.write_bytes(b"memo to counsel " * 100)
    (put,) = alice.put(case_id, [doc])
    url = app_settings.resolved_database_url()
    ((key,),) = run_sql(
        url, "SELECT blob_key FROM file_versions WHERE file_id = :f", {"f": put["file_id"]}
    )
    (blob,) = [p for p in app_settings.resolved_blob_dir().rglob(key) if p.is_file()]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    out = tmp_path / "out.txt"
    with pytest.raises(IntegrityError) as failure:
        alice.get(case_id, put["file_id"], output=out, version=None)
    assert str(failure.value) == f"file {put['file_id']} failed verification"
    assert not out.exists()
    downloads = run_sql(
        url, "SELECT count(*) FROM audit_events WHERE action = 'file:version:downloaded'"
    )
    assert downloads == [(1,)]
