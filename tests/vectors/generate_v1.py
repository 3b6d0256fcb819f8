"""Generate the format cv1 test vectors (run once; committed vectors are never regenerated).

Ids, keys, seeds, salts and AEAD nonces come from a seeded generator and Ed25519 is
deterministic, so those vectors are reproducible. HPKE and Cobblestone draw their own
randomness inside the library, so grant and stream vectors are decrypt-direction: they store
the private key and the ciphertext, and a second run produces different but equally valid bytes.

    python tests/vectors/generate_v1.py OUTPUT_DIR   (refuses a non-empty directory)
    python tests/vectors/generate_v1.py --append OUTPUT_DIR

Cases are only ever appended: a new case draws from the seeded generator after every older
case, so the older cases' draws do not move. `--append` runs the whole generator into a scratch
directory and copies only the vectors OUTPUT_DIR does not have yet; it never rewrites one.

Vector file: `name: value` header lines (always `expect:` and `kind:`), one empty line, then
the payload: base64 (76 columns) for stream kinds, one JSON object otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from client.crypto import _aead, kdf
from client.crypto import seal as _seal
from client.crypto.keys import PURPOSE_KEK, Identity, wrap_identity
from client.crypto.seal import (
    LABEL_FILE_META,
    FileMetadata,
    encrypt_file_metadata,
    file_metadata_body,
    seal_grant,
    wrap_file_key,
)
from client.crypto.stream import MAGIC, encrypt_stream
from vault.protocol import membership as m
from vault.protocol import records as r
from vault.protocol.encoding import b64d, b64e, canonical_json, parse_canonical
from vault.protocol.intake import IntakeRecord

RNG = random.Random(20240601)  # noqa: S311 - determinism for vectors, not secrecy


def rb(n: int) -> bytes:
    return RNG.randbytes(n)


def rid() -> str:
    return rb(16).hex()


def person(name: str) -> Identity:
    return Identity._from_parts(rid(), name, 1_700_000_000, rb(32), rb(64), rb(32))


def seeds(ident: Identity) -> dict:
    return {
        "user_id": ident.user_id,
        "username": ident.username,
        "created_at": ident.created_at,
        "sign_seed": ident.sign_seed.hex(),
        "mlkem_seed": ident.mlkem_seed.hex(),
        "x25519": ident.x25519_private.hex(),
    }


def write(out: Path, name: str, header: dict, payload: str) -> None:
    lines = [f"{k}: {v}" for k, v in header.items()]
    (out / f"{name}.txt").write_text("\n".join(lines) + "\n\n" + payload + "\n", encoding="utf-8")


def b64_lines(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) or "="


def tamper(signed: dict, **changes) -> dict:
    body = parse_canonical(b64d(signed["body"]))
    body.update(changes)
    return {"body": b64e(canonical_json(body)), "sig": signed["sig"]}


# ---------------------------------------------------------------- stream


def streams(out: Path) -> None:
    case_id, file_id = rid(), rid()
    key = rb(32)

    def enc(data: bytes, **coords) -> bytes:
        sink = io.BytesIO()
        c = {"case_id": case_id, "file_id": file_id, "version": 1, **coords}
        encrypt_stream(io.BytesIO(data), sink, key, **c)
        return sink.getvalue()

    def emit(name, expect, data, blob, comment, size=None, use_key=key, version=1):
        size = len(data) if size is None else size
        header = {
            "expect": expect,
            "kind": "stream",
            "comment": comment,
            "file_key": use_key.hex(),
            "case_id": case_id,
            "file_id": file_id,
            "version": version,
            "plaintext_size": size,
            "plaintext_sha256": hashlib.sha256(data).hexdigest() if expect == "success" else "-",
        }
        write(out, name, header, b64_lines(blob))

    hdr = len(MAGIC) + 56
    sealed = 16 * 1024 + 16
    for label, size in (
        ("empty", 0),
        ("one_byte", 1),
        ("one_chunk", 16 * 1024),
        ("chunk_plus_one", 16 * 1024 + 1),
        ("three_chunks", 40_000),
    ):
        data = rb(size)
        emit(f"stream_success_{label}", "success", data, enc(data), f"{size} bytes")
    data = rb(40_000)
    blob = enc(data)
    bad = bytearray(blob)
    bad[len(MAGIC) + 3] ^= 0x80
    emit("stream_header_failure", "header failure", data, bytes(bad), "flipped header byte")
    bad = bytearray(blob)
    bad[hdr + sealed + 100] ^= 0x01
    emit("stream_payload_failure", "payload failure", data, bytes(bad), "flipped byte, chunk 1")
    emit(
        "stream_truncated",
        "truncated",
        data,
        blob[: hdr + 2 * sealed],
        "final chunk removed at a chunk boundary",
    )
    c0, c1 = blob[hdr : hdr + sealed], blob[hdr + sealed : hdr + 2 * sealed]
    emit(
        "stream_reordered",
        "reordered",
        data,
        blob[:hdr] + c1 + c0 + blob[hdr + 2 * sealed :],
        "chunks 0 and 1 swapped",
    )
    emit("stream_wrong_key", "wrong key", data, blob, "decrypt with another key", use_key=rb(32))
    emit(
        "stream_wrong_context",
        "wrong context",
        data,
        blob,
        "blob presented as version 2 of the file",
        version=2,
    )
    emit(
        "stream_unsupported_version",
        "unsupported version",
        data,
        b"casevault/cv2\n" + blob[len(MAGIC) :],
        "magic names cv2",
    )
    hidden = data[:1000] + b"\x01" * 24  # padme(1000) == 1024: nonzero bytes in the padding
    emit(
        "stream_padding_failure",
        "padding failure",
        hidden,
        enc(hidden),
        "metadata says 1000 bytes, padding is not zero",
        size=1000,
    )


# ---------------------------------------------------------------- keys


def kdf_vectors(out: Path) -> None:
    salt = rb(16)
    passphrase = "correct horse battery staple \u00e9"
    params = kdf.KdfParams(salt, kdf.FLOOR_OPS, kdf.FLOOR_MEM)
    keys = kdf.derive_account_keys(passphrase, params)
    body = {"passphrase": passphrase, "salt": salt.hex(), "ops": params.ops, "mem": params.mem}
    write(
        out,
        "kdf_success_interactive",
        {
            "expect": "success",
            "kind": "kdf",
            "comment": "floor parameters, NFKC passphrase",
            "auth_key": keys.auth_key.hex(),
            "kek": keys.kek.hex(),
        },
        json.dumps(body),
    )
    write(
        out,
        "kdf_downgrade",
        {
            "expect": "weak parameters",
            "kind": "kdf",
            "comment": "ops=1, 8 MiB: MUST be refused",
        },
        json.dumps({**body, "ops": 1, "mem": 8 * 1024 * 1024}),
    )

    secret = rb(kdf.RECOVERY_SECRET_BYTES)
    code = kdf.format_recovery_code(secret)
    rk = kdf.recovery_keys(secret)
    write(
        out,
        "recovery_success",
        {
            "expect": "success",
            "kind": "recovery",
            "comment": "printable recovery code",
            "secret": secret.hex(),
            "recovery_key": rk.recovery_key.hex(),
            "recovery_auth_key": rk.recovery_auth_key.hex(),
        },
        json.dumps({"code": code}),
    )
    typo = code[:5] + ("A" if code[5] != "A" else "B") + code[6:]
    write(
        out,
        "recovery_checksum_failure",
        {
            "expect": "checksum failure",
            "kind": "recovery",
            "comment": "one character changed",
        },
        json.dumps({"code": typo}),
    )


def identity_vectors(out: Path) -> None:
    alice = person("alice")
    signed = alice.public_record()
    rec = r.verify_identity_record(signed)
    hdr = {
        "kind": "identity",
        "fingerprint": rec.fingerprint_hex,
        "safety_number": rec.safety_number,
    }
    write(
        out,
        "identity_success",
        {"expect": "success", **hdr, "comment": "self-signed"},
        json.dumps({"seeds": seeds(alice), "record": signed}),
    )
    other = person("mallory")
    write(
        out,
        "identity_bad_signature",
        {"expect": "bad signature", **hdr, "comment": "kem_pk swapped, old signature kept"},
        json.dumps({"seeds": seeds(alice), "record": tamper(signed, kem_pk=b64e(other.kem_pk))}),
    )
    body = parse_canonical(b64d(signed["body"]))
    body["v"] = "cv2"
    v2 = {
        "body": b64e(canonical_json(body)),
        "sig": b64e(alice.signing_key.sign(r.signing_input(r.LABEL_IDENTITY, body)).signature),
    }
    write(
        out,
        "identity_unsupported_version",
        {"expect": "unsupported version", **hdr, "comment": "validly signed body with v=cv2"},
        json.dumps({"seeds": seeds(alice), "record": v2}),
    )

    kek = rb(32)
    blob = wrap_identity(alice, kek, PURPOSE_KEK, nonce=rb(24))
    wrap = {"kind": "identity-wrap", "user_id": alice.user_id, "purpose": PURPOSE_KEK}
    write(
        out,
        "identity_wrap_success",
        {"expect": "success", **wrap, "key": kek.hex(), "comment": "identity under kek"},
        json.dumps({"seeds": seeds(alice), "wrapped": b64e(blob)}),
    )
    write(
        out,
        "identity_wrap_wrong_key",
        {"expect": "wrong key", **wrap, "key": rb(32).hex(), "comment": "another kek"},
        json.dumps({"seeds": seeds(alice), "wrapped": b64e(blob)}),
    )


def meta_json(meta: FileMetadata) -> dict:
    fields = {k: v for k, v in meta.__dict__.items() if v is not None}
    if meta.intake is not None:
        fields["intake"] = meta.intake.to_json()
    return fields


def file_vectors(out: Path) -> None:
    case_key, file_key = rb(32), rb(32)
    coords = {"case_id": rid(), "file_id": rid(), "version": 1}
    wrapped = wrap_file_key(file_key, case_key=case_key, generation=0, nonce=rb(24), **coords)
    hdr = {"kind": "file-key", "case_key": case_key.hex(), **coords, "generation": 0}
    write(
        out,
        "file_key_success",
        {
            "expect": "success",
            **hdr,
            "file_key": file_key.hex(),
            "comment": "file key wrapped under generation 0",
        },
        json.dumps({"wrapped": b64e(wrapped)}),
    )
    write(
        out,
        "file_key_wrong_context",
        {"expect": "wrong context", **hdr, "version": 2, "comment": "wrap presented for version 2"},
        json.dumps({"wrapped": b64e(wrapped)}),
    )
    meta = FileMetadata(
        "statement.pdf", 40_000, "ab" * 32, "application/pdf", 1_700_000_123, "intake"
    )
    blob = encrypt_file_metadata(meta, file_key=file_key, nonce=rb(24), **coords)
    write(
        out,
        "file_meta_success",
        {
            "expect": "success",
            "kind": "file-meta",
            "file_key": file_key.hex(),
            **coords,
            "comment": "metadata record",
        },
        # Optional fields that are absent stay out of the vector, as they stay out of the record.
        json.dumps({"blob": b64e(blob), "meta": meta_json(meta)}),
    )


# ---------------------------------------------------------------- records with authority


def log_for(owner: Identity, members: list[tuple[Identity, str]]) -> tuple[str, list[dict]]:
    case_id = rid()
    entries: list[dict] = []
    people = [(owner, "owner", "create")] + [(p, role, "add") for p, role in members]
    for seq, (p, role, action) in enumerate(people):
        prev = (
            r.open_envelope(r.LABEL_MEMBERSHIP, entries[-1]).record_hash if entries else r.ZERO_HASH
        )
        body = m.membership_entry_body(
            case_id=case_id,
            seq=seq,
            prev_hash=prev,
            action=action,
            subject=p.user_id,
            subject_fp=p.record().fingerprint_hex,
            role=role,
            author=owner.user_id,
            time=1_700_000_000 + seq,
            generation=0,
        )
        entries.append(owner.sign(r.LABEL_MEMBERSHIP, body))
    return case_id, entries


def authority_vectors(out: Path) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    case_id, entries = log_for(alice, [(bob, "editor"), (carol, "viewer")])
    base = {"people": [seeds(p) for p in (alice, bob, carol)], "membership": entries}
    case_key = rb(32)
    grant = seal_grant(
        case_key=case_key,
        case_id=case_id,
        generation=0,
        member=carol.record(),
        granter=alice,
        now=1_700_000_100,
    )
    ghdr = {"kind": "grant", "case_id": case_id, "generation": 0}
    write(
        out,
        "grant_success",
        {
            "expect": "success",
            **ghdr,
            "opener": "carol",
            "case_key": case_key.hex(),
            "comment": "owner to viewer",
        },
        json.dumps({**base, "grant": grant}),
    )
    write(
        out,
        "grant_bad_signature",
        {
            "expect": "bad signature",
            **ghdr,
            "opener": "carol",
            "comment": "sealed key replaced, signature kept",
        },
        json.dumps({**base, "grant": tamper(grant, sealed_key=b64e(rb(1168)))}),
    )
    by_editor = seal_grant(
        case_key=rb(32),
        case_id=case_id,
        generation=0,
        member=carol.record(),
        granter=bob,
        now=1_700_000_100,
    )
    write(
        out,
        "grant_not_owner",
        {"expect": "not authorized", **ghdr, "opener": "carol", "comment": "signed by an editor"},
        json.dumps({**base, "grant": by_editor}),
    )
    write(
        out,
        "grant_wrong_key",
        {"expect": "wrong key", **ghdr, "opener": "bob", "comment": "carol's grant opened by bob"},
        json.dumps({**base, "grant": grant}),
    )

    def manifest(uploader: Identity, seq: int) -> dict:
        body = r.manifest_body(
            case_id=case_id,
            file_id="0" * 31 + "1",
            version=1,
            generation=0,
            membership_seq=seq,
            blob_size=40_000,
            blob_sha256=rb(32).hex(),
            meta_hash=rb(32).hex(),
            wrapped_key_hash=rb(32).hex(),
            uploader=uploader.user_id,
            time=1_700_000_200,
        )
        return uploader.sign(r.LABEL_MANIFEST, body)

    mhdr = {"kind": "manifest", "case_id": case_id}
    good = manifest(bob, 2)
    write(
        out,
        "manifest_success",
        {"expect": "success", **mhdr, "comment": "editor upload"},
        json.dumps({**base, "manifest": good}),
    )
    write(
        out,
        "manifest_bad_signature",
        {"expect": "bad signature", **mhdr, "comment": "blob hash replaced"},
        json.dumps({**base, "manifest": tamper(good, blob_sha256=rb(32).hex())}),
    )
    write(
        out,
        "manifest_not_member",
        {
            "expect": "not authorized",
            **mhdr,
            "comment": "bob signs for a point before he was added",
        },
        json.dumps({**base, "manifest": manifest(bob, 0)}),
    )
    write(
        out,
        "manifest_viewer",
        {"expect": "not authorized", **mhdr, "comment": "a viewer's upload"},
        json.dumps({**base, "manifest": manifest(carol, 2)}),
    )
    tampered = list(entries)
    tampered[2] = tamper(entries[2], role="owner")
    write(
        out,
        "membership_tampered",
        {
            "expect": "bad signature",
            "kind": "membership",
            "comment": "carol upgraded to owner in storage",
        },
        json.dumps({**base, "membership": tampered}),
    )
    write(
        out,
        "membership_reordered",
        {"expect": "reordered", "kind": "membership", "comment": "entries 1 and 2 swapped"},
        json.dumps({**base, "membership": [entries[0], entries[2], entries[1]]}),
    )


# ---------------------------------------------------------------- appended: folders, custody, hold


def folder_intake_vectors(out: Path) -> None:
    file_key = rb(32)
    coords = {"case_id": rid(), "file_id": rid(), "version": 1}
    uploader = rid()
    sha = hashlib.sha256(b"scene photograph").hexdigest()
    intake = IntakeRecord(
        sha256=sha,
        original_name="IMG_0001.JPG",
        original_mtime=1_700_000_000,
        taken_in_by=uploader,
        taken_in_at=1_700_000_050,
        source="client's phone",
        note="handed over at the office",
        client_version="casevault 0.2.0",
    )
    meta = FileMetadata(
        "IMG_0001.jpg", 16, sha, "image/jpeg", 1_700_000_050, "",
        path="Evidence/photos/IMG_0001.jpg", intake=intake,
    )
    blob = encrypt_file_metadata(meta, file_key=file_key, nonce=rb(24), **coords)
    hdr = {"kind": "file-meta", "file_key": file_key.hex(), **coords}
    write(
        out,
        "file_meta_path_intake_success",
        {"expect": "success", **hdr, "comment": "metadata with folder path and intake record"},
        json.dumps({"blob": b64e(blob), "meta": meta_json(meta)}),
    )
    # The uploader holds the file key and can seal any plaintext: a path that climbs out.
    hostile = {**file_metadata_body(meta), "path": "../../.ssh/authorized_keys",
               "name": "authorized_keys"}
    ad = _aead.labelled(LABEL_FILE_META, *coords.values())
    bad = _aead.seal(_seal._meta_key(file_key), canonical_json(hostile), ad, nonce=rb(24))
    write(
        out,
        "file_meta_bad_path",
        {"expect": "malformed", **hdr, "comment": "sealed by the uploader with a '..' path"},
        json.dumps({"blob": b64e(bad)}),
    )


def hold_vectors(out: Path) -> None:
    alice, bob = person("alice"), person("bob")
    case_id = rid()
    entries: list[dict] = []

    def entry(author: Identity, action: str, subject: Identity, role: str, **extra) -> dict:
        prev = (
            r.open_envelope(r.LABEL_MEMBERSHIP, entries[-1]).record_hash if entries else r.ZERO_HASH
        )
        body = m.membership_entry_body(
            case_id=case_id,
            seq=len(entries),
            prev_hash=prev,
            action=action,
            subject=subject.user_id,
            subject_fp=subject.record().fingerprint_hex,
            role=role,
            author=author.user_id,
            time=1_700_000_000 + len(entries),
            generation=0,
            **extra,
        )
        return author.sign(r.LABEL_MEMBERSHIP, body)

    entries.append(entry(alice, "create", alice, "owner"))
    entries.append(entry(alice, "add", bob, "editor"))
    base_len = len(entries)
    entries.append(entry(alice, "hold", alice, "owner", reason="preservation order 2026/117"))
    entries.append(entry(alice, "release", alice, "owner"))
    entries.append(entry(alice, "hold", alice, "owner", reason="appeal pending"))
    folks = {"people": [seeds(p) for p in (alice, bob)]}
    mhdr = {"kind": "membership", "case_id": case_id}
    write(
        out,
        "membership_hold_success",
        {"expect": "success", **mhdr, "hold_seq": 4, "comment": "hold, release, hold again"},
        json.dumps({**folks, "membership": entries}),
    )
    del entries[base_len:]
    by_editor = entry(bob, "hold", bob, "owner", reason="editor tries a hold")
    write(
        out,
        "membership_hold_not_owner",
        {"expect": "not authorized", **mhdr, "comment": "an editor signs a hold"},
        json.dumps({**folks, "membership": [*entries, by_editor]}),
    )
    release = entry(alice, "release", alice, "owner")
    write(
        out,
        "membership_release_not_held",
        {"expect": "invalid transition", **mhdr, "comment": "release with no hold standing"},
        json.dumps({**folks, "membership": [*entries, release]}),
    )
    entries.append(entry(alice, "hold", alice, "owner", reason="preservation order 2026/117"))
    body = r.tombstone_body(
        case_id=case_id, file_id=rid(), membership_seq=2, deleter=bob.user_id,
        time=1_700_000_100,
    )
    write(
        out,
        "tombstone_under_hold",
        {"expect": "not authorized", "kind": "tombstone", "case_id": case_id,
         "comment": "an editor deletes while a hold stands"},
        json.dumps({**folks, "membership": entries,
                    "tombstone": bob.sign(r.LABEL_TOMBSTONE, body)}),
    )


def generate(out: Path) -> None:
    # Order matters: each case's draws follow every earlier case's. Append new cases last.
    streams(out)
    kdf_vectors(out)
    identity_vectors(out)
    file_vectors(out)
    authority_vectors(out)
    folder_intake_vectors(out)
    hold_vectors(out)


def append(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        new = sorted(p for p in Path(scratch).iterdir() if not (out / p.name).exists())
        for path in new:
            shutil.copyfile(path, out / path.name)
    print(f"appended {len(new)} vectors to {out}: {', '.join(p.stem for p in new)}")


def main() -> None:
    if sys.argv[1] == "--append":
        append(Path(sys.argv[2]))
        return
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        sys.exit(f"{out} is not empty: committed vectors are never regenerated")
    generate(out)
    print(f"wrote {len(list(out.iterdir()))} vectors to {out}")


if __name__ == "__main__":
    main()
