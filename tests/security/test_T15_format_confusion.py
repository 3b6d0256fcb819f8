"""T15: a hostile server serves records of an unknown version or in a second encoding.

Every signed or hashed record has exactly one encoding and carries a cv1/ label; anything else is
refused with EncodingError rather than guessed at.
"""

from __future__ import annotations

import pytest

from vault.protocol.encoding import (
    EncodingError,
    b64d,
    b64e,
    canonical_json,
    parse_canonical,
    signing_input,
)

RECORD = {"case_id": "0" * 32, "generation": 1, "sealed": b64e(b"\x01\x02\x03")}


@pytest.mark.parametrize("label", ["cv2/manifest", "cv0/grant", "manifest", "CV1/manifest", ""])
def test_T15_unknown_version_rejected(label):
    with pytest.raises(EncodingError):
        signing_input(label, RECORD)


def test_T15_known_version_is_domain_separated():
    # Same record under two labels must never yield the same signed bytes.
    a = signing_input("cv1/manifest", RECORD)
    b = signing_input("cv1/grant", RECORD)
    assert a != b
    assert a.startswith(b"cv1/manifest\x00")


_CANONICAL = canonical_json(RECORD)


@pytest.mark.parametrize(
    "mutant",
    [
        # White space, key order, escapes and duplicates all give a second encoding.
        _CANONICAL.replace(b",", b", "),
        b'{"sealed":"AQID","generation":1,"case_id":"' + b"0" * 32 + b'"}',
        _CANONICAL.replace(b'"generation":1', b'"generation":1.0'),
        _CANONICAL.replace(b'"generation":1', b'"generation":1e0'),
        _CANONICAL.replace(b'"generation":1', b'"generation":01'),
        _CANONICAL.replace(b'"generation":1', b'"generation":NaN'),
        _CANONICAL.replace(b"case_id", b"case\\u005fid"),
        _CANONICAL[:-1] + b',"generation":2}',
        _CANONICAL + b"\n",
        b"\xef\xbb\xbf" + _CANONICAL,
        b"[" + _CANONICAL + b"]",
        _CANONICAL.replace(b'"generation":1', b'"generation":9223372036854775808'),
    ],
)
def test_T15_non_canonical_encodings_rejected(mutant):
    assert mutant != _CANONICAL
    with pytest.raises(EncodingError):
        parse_canonical(mutant)


def test_T15_canonical_record_round_trips():
    assert parse_canonical(_CANONICAL) == RECORD


@pytest.mark.parametrize(
    "text",
    [
        "AQID=",  # padding
        "AQ+D",  # standard alphabet
        "AQ/D",
        "AQJ",  # non-zero trailing bits: a second spelling of b"\x01\x02"
        "A",  # impossible length
        "AQ ID",
        "AQID\n",
    ],
)
def test_T15_non_canonical_base64_rejected(text):
    with pytest.raises(EncodingError):
        b64d(text)


def test_T15_oversized_record_rejected():
    big = canonical_json({"x": "a" * (1 << 20)})
    with pytest.raises(EncodingError):
        parse_canonical(big)
