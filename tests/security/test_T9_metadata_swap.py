"""T9: a hostile server serves file A's encrypted metadata with file B, so the lawyer sees
B's content under A's name, size and chain-of-custody hash (or the reverse)."""

from __future__ import annotations

import pytest
from attack_kit import seal_file

from client.crypto.errors import IntegrityError
from client.crypto.seal import decrypt_file_metadata


def test_T9_metadata_swapped_between_files_fails():
    a = seal_file(b"Witness statement, unredacted", name="statement-unredacted.txt")
    b = seal_file(b"Witness statement, redacted", name="statement-redacted.txt", case_id=a.case_id)
    own = decrypt_file_metadata(
        b.meta, file_key=b.file_key, case_id=b.case_id, file_id=b.file_id, version=1
    )
    assert own.name == "statement-redacted.txt"
    # A's metadata record handed out as B's: B's file key does not open it...
    with pytest.raises(IntegrityError, match="^file metadata failed verification$"):
        decrypt_file_metadata(
            a.meta, file_key=b.file_key, case_id=b.case_id, file_id=b.file_id, version=1
        )
    # ...and even A's key together with A's record fails under B's coordinates (the AD binds
    # case, file and version), which covers a server that moves key and record together.
    with pytest.raises(IntegrityError, match="^file metadata failed verification$"):
        decrypt_file_metadata(
            a.meta, file_key=a.file_key, case_id=b.case_id, file_id=b.file_id, version=1
        )


def test_T9_metadata_swapped_between_versions_fails():
    v1 = seal_file(b"draft", version=1, name="plea-draft.txt")
    v2 = seal_file(
        b"final",
        version=2,
        name="plea-final.txt",
        case_id=v1.case_id,
        file_id=v1.file_id,
        file_key=v1.file_key,
    )
    with pytest.raises(IntegrityError):
        decrypt_file_metadata(
            v1.meta, file_key=v2.file_key, case_id=v2.case_id, file_id=v2.file_id, version=2
        )
