"""Canonical encoding of every signed or hashed record of format cv1.

A record is a JSON object with sorted keys, no insignificant white space, UTF-8, integers only
(no floats), and byte strings as unpadded base64url text. Signatures and hashes are always over
`label || 0x00 || canonical_json`, where `label` is a domain-separation string such as
"cv1/manifest". A parser MUST re-encode what it read and reject it unless the bytes are
identical, so one record has exactly one encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

FORMAT_VERSION = "cv1"
MAX_RECORD_BYTES = 1 << 20
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Digits of the longest integer in range, sign included: anything longer is refused before
# int() sees it (Python refuses over 4300 digits with a bare ValueError, and is slow below).
_MAX_INT_CHARS = len(str(INT_MIN))

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class EncodingError(ValueError):
    """A record is not in canonical cv1 form."""


def b64e(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Strict inverse of b64e: rejects padding, other alphabets and non-canonical trailing bits."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise EncodingError("invalid base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EncodingError("invalid base64url") from exc
    if b64e(data) != text:
        raise EncodingError("non-canonical base64url")
    return data


def _check_text(text: str) -> None:
    # A lone surrogate (JSON "\ud800") decodes to a str that has no UTF-8 encoding: refused
    # here rather than failing later in whoever encodes, stores or prints it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError("text holds a lone surrogate") from exc


def _check(value: Any) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError("integer out of range")
        return
    if isinstance(value, list):
        for item in value:
            _check(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError("object keys must be strings")
            _check_text(key)
            _check(item)
        return
    raise EncodingError(f"type {type(value).__name__} has no canonical encoding")


def canonical_json(obj: dict[str, Any]) -> bytes:
    """The one canonical encoding of a record (bytes values must already be b64e strings)."""
    if not isinstance(obj, dict):
        raise EncodingError("a record is a JSON object")
    _check(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise EncodingError("duplicate key")
    return dict(pairs)


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no floats, NaN or Infinity, integers in
    [-2^63, 2^63), no lone surrogates, bounded depth. Every failure is EncodingError.

    Shared by canonical records (both sides) and the server's request bodies, so a hostile
    input fails the same way wherever it arrives.
    """
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
            parse_int=_bounded_int,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EncodingError("not JSON") from exc
    try:
        _check(obj)
    except RecursionError as exc:
        raise EncodingError("nested too deeply") from exc
    return obj


def parse_canonical(data: bytes) -> dict[str, Any]:
    """Parse a record and insist that it was canonical."""
    if len(data) > MAX_RECORD_BYTES:
        raise EncodingError("record too large")
    obj = parse_json(data)
    if not isinstance(obj, dict):
        raise EncodingError("a record is a JSON object")
    if canonical_json(obj) != data:
        raise EncodingError("record is not canonical")
    return obj


def _no_float(text: str) -> Any:
    raise EncodingError("floats are not allowed")


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise EncodingError("integer out of range")
    return int(text)


def signing_input(label: str, obj: dict[str, Any]) -> bytes:
    """The exact bytes that are signed or hashed for a record under a domain label."""
    if not label.startswith(FORMAT_VERSION + "/"):
        raise EncodingError("unknown format version")
    return label.encode("ascii") + b"\x00" + canonical_json(obj)
