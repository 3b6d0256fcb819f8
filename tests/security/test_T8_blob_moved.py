"""T8: a hostile server moves a genuine blob (with its wrapped key and manifest) to another
case, another file or another version, hoping the client shows it there.

The Cobblestone context, the file-key wrap's associated data and the signed manifest each bind
(case, file, version); every layer is attacked on its own here.
"""

from __future__ import annotations

import os

import pytest
from attack_kit import open_blob, seal_file

from client.crypto.errors import IntegrityError
from client.crypto.seal import new_case_key, unwrap_file_key, wrap_file_key
from vault.protocol.ids import new_id


@pytest.fixture(scope="module")
def sealed():
    return seal_file(b"Exhibit 7: CCTV log extract. " * 200, version=2)


def _elsewhere(sealed):
    return {
        "other case": {"case_id": new_id()},
        "other file": {"file_id": new_id()},
        "other version": {"version": 1},
        "newer version": {"version": 3},
    }


def test_T8_blob_moved_to_other_case_file_or_version_fails(sealed, tmp_path):
    # Even with the right file key in hand, content does not decrypt under other coordinates.
    for name, where in _elsewhere(sealed).items():
        with pytest.raises(IntegrityError):
            open_blob(sealed, sealed.blob, tmp_path / "out", **where)
        assert os.listdir(tmp_path) == [], name


def test_T8_wrapped_key_moved_to_other_coordinates_fails(sealed):
    case_key = new_case_key()
    coords = {"case_id": sealed.case_id, "file_id": sealed.file_id, "version": 2, "generation": 0}
    wrapped = wrap_file_key(sealed.file_key, case_key=case_key, **coords)
    assert unwrap_file_key(wrapped, case_key=case_key, **coords) == sealed.file_key
    for change in (
        {"case_id": new_id()},
        {"file_id": new_id()},
        {"version": 1},
        {"generation": 1},
    ):
        with pytest.raises(IntegrityError, match="^file key failed verification$"):
            unwrap_file_key(wrapped, case_key=case_key, **{**coords, **change})
