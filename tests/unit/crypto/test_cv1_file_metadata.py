"""File metadata with a folder path and an intake record.

The uploader holds the file key, so a hostile uploader (or a server replaying another member's
record) can seal any plaintext it likes: each test below seals such a record the way the
uploader would and shows that the reader refuses it before any path is used.
"""

from __future__ import annotations

import json

import pytest

from client.crypto import _aead, seal
from client.crypto.errors import IntegrityError
from client.crypto.seal import (
    LABEL_FILE_META,
    FileMetadata,
    decrypt_file_metadata,
    encrypt_file_metadata,
    file_metadata_body,
    new_file_key,
)
from vault.protocol.encoding import FORMAT_VERSION, canonical_json
from vault.protocol.ids import new_id
from vault.protocol.intake import IntakeError, IntakeRecord
from vault.protocol.paths import PathError

COORDS = {"case_id": new_id(), "file_id": new_id(), "version": 2}
SHA = "cd" * 32
UPLOADER = new_id()


def intake(**over) -> IntakeRecord:
    fields = {
        "sha256": SHA,
        "original_name": "IMG 0001.JPG",
        "original_mtime": 1_700_000_000,
        "taken_in_by": UPLOADER,
        "taken_in_at": 1_700_000_050,
        "source": "USB stick from the client's sister",
        "note": "received at the office",
        "client_version": "casevault 0.2.0",
    }
    return IntakeRecord(**{**fields, **over})


def full() -> FileMetadata:
    return FileMetadata(
        "IMG_0001.jpg", 2_000_000, SHA, "image/jpeg", 1_700_000_050, "",
        path="Evidence/photos/IMG_0001.jpg", intake=intake(),
    )


def seal_body(body: dict, file_key: bytes) -> bytes:
    """What an uploader holding the file key can produce: any plaintext, correctly sealed."""
    ad = _aead.labelled(LABEL_FILE_META, *COORDS.values())
    return _aead.seal(seal._meta_key(file_key), json.dumps(body).encode(), ad)


def test_record_without_new_fields_encodes_exactly_as_before():
    meta = FileMetadata("a.pdf", 3, SHA, "application/pdf", 7, "n")
    old_body = {"v": FORMAT_VERSION, "name": "a.pdf", "size": 3, "sha256": SHA,
                "media_type": "application/pdf", "client_time": 7, "note": "n"}
    assert file_metadata_body(meta) == old_body
    key, nonce = new_file_key(), bytes(24)
    ad = _aead.labelled(LABEL_FILE_META, *COORDS.values())
    expected = _aead.seal(seal._meta_key(key), canonical_json(old_body), ad, nonce=nonce)
    assert encrypt_file_metadata(meta, file_key=key, nonce=nonce, **COORDS) == expected
    assert meta.case_path == "a.pdf"


def test_record_with_path_and_intake_round_trips():
    key = new_file_key()
    meta = full()
    blob = encrypt_file_metadata(meta, file_key=key, **COORDS)
    back = decrypt_file_metadata(blob, file_key=key, **COORDS)
    assert back == meta
    assert back.case_path == "Evidence/photos/IMG_0001.jpg"
    assert back.intake is not None and back.intake.original_name == "IMG 0001.JPG"


def test_path_alone_and_intake_alone_round_trip():
    key = new_file_key()
    for meta in (
        FileMetadata("b.txt", 1, SHA, path="Pleadings/b.txt"),
        FileMetadata("b.txt", 1, SHA, intake=intake(original_mtime=None)),
    ):
        blob = encrypt_file_metadata(meta, file_key=key, **COORDS)
        assert decrypt_file_metadata(blob, file_key=key, **COORDS) == meta


def test_constructor_refuses_what_a_reader_would_refuse():
    with pytest.raises(PathError, match="'..'"):
        FileMetadata("x", 1, SHA, path="../x")
    with pytest.raises(PathError, match="canonical"):
        FileMetadata("é", 1, SHA, path="e\u0301")
    with pytest.raises(PathError, match="last segment"):
        FileMetadata("other.pdf", 1, SHA, path="Evidence/a.pdf")
    with pytest.raises(IntakeError, match="content's hash"):
        FileMetadata("a", 1, "ee" * 32, intake=intake())


def _hostile(**changes) -> dict:
    body = file_metadata_body(full())
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()

HOSTILE = {
    "path_traversal": {"path": "../../.bashrc", "name": ".bashrc"},
    "path_absolute": {"path": "/etc/cron.d/x", "name": "x"},
    "path_backslash": {"path": "Evidence\\..\\..\\x", "name": "Evidence\\..\\..\\x"},
    "path_bidi": {"path": "a/\u202egpj.exe", "name": "\u202egpj.exe"},
    "path_reserved": {"path": "Evidence/CON", "name": "CON"},
    "path_not_nfc": {"path": "Cafe\u0301/a", "name": "a"},
    "path_null": {"path": None},
    "path_not_text": {"path": ["Evidence", "a"]},
    "name_differs_from_path": {"name": "innocent.pdf"},
    "unknown_key": {"folder": "Evidence"},
    "intake_not_object": {"intake": "taken in by alice"},
    "intake_null": {"intake": None},
    "intake_unknown_key": {"intake": {**intake().to_json(), "witness": "x"}},
    "intake_bad_hash": {"intake": {**intake().to_json(), "sha256": "ee" * 32}},
    "intake_control_char": {"intake": {**intake().to_json(), "note": "ok\x1b]8;;http://x\x07"}},
    "intake_float_time": {"intake": {**intake().to_json(), "taken_in_at": 1.5e9}},
    "missing_required": {"media_type": _DROP},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_records_are_refused_on_decrypt(case):
    key = new_file_key()
    blob = seal_body(_hostile(**HOSTILE[case]), key)
    with pytest.raises(IntegrityError, match="file metadata"):
        decrypt_file_metadata(blob, file_key=key, **COORDS)


def test_legacy_name_that_no_path_may_hold_still_decrypts_but_has_no_case_path():
    # Records written before folders existed keep opening; a client that writes the file out
    # goes through case_path and is stopped there.
    key = new_file_key()
    meta = FileMetadata("../../x", 1, SHA)
    back = decrypt_file_metadata(
        encrypt_file_metadata(meta, file_key=key, **COORDS), file_key=key, **COORDS
    )
    with pytest.raises(PathError):
        _ = back.case_path
