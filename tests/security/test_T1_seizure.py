"""T1: the state seizes the server: database, blob store and the data folder with the server's
own keys. It reads everything at rest and looks for content, file names and case names."""

from __future__ import annotations

import base64

from attack_kit import PASSPHRASE, all_file_bytes, dump_database, encodings_of

CASE_NAME = "R v Okonkwo - defence strategy"
CASE_NOTE = "alibi witness lives at 14 Harbour Road"
FILE_NAME = "client-confession-draft.txt"
CONTENT = b"I was at my sister's flat on the night of 3 March; privileged and confidential. " * 50


def test_T1_seized_database_and_blobs_hold_no_plaintext(lawyer, app_settings, tmp_path):
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case(CASE_NAME, CASE_NOTE)
    path = tmp_path / FILE_NAME
    path.write_bytes(CONTENT)
    alice.put(case_id, [path])
    alice.share(case_id, "bob", role="editor")
    assert bob.ls(case_id)[0]["name"] == FILE_NAME  # the data is really there

    seized_db = dump_database(app_settings.resolved_database_url()).encode("utf-8", "replace")
    seized_disk = all_file_bytes(app_settings.data_dir)
    assert len(seized_disk) > len(CONTENT), "the blob store was not captured"
    identity = alice.identity()
    secrets_in_clear = {
        "content": CONTENT[:64],
        "file name": FILE_NAME.encode(),
        "case name": CASE_NAME.encode(),
        "case description": CASE_NOTE.encode(),
        "passphrase": PASSPHRASE.encode(),
    }
    for label, value in secrets_in_clear.items():
        for form in {value, base64.b64encode(value), base64.urlsafe_b64encode(value)}:
            assert form[:40] not in seized_db, f"{label} in the seized database"
            assert form[:40] not in seized_disk, f"{label} in the seized data folder"
    for label, key in {
        "signing key": identity.sign_seed,
        "ML-KEM seed": identity.mlkem_seed,
        "X25519 key": identity.x25519_private,
    }.items():
        for form in encodings_of(key):
            assert form.encode("latin-1") not in seized_db, f"{label} in the database"
            assert form.encode("latin-1") not in seized_disk, f"{label} in the data folder"
