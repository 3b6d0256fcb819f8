"""Identifiers: 128-bit random values written as 32 lowercase hex digits.

Every id that arrives from a client is checked against this exact shape before it is used, so no
id can carry a path, a wildcard or a second encoding of the same value.
"""

from __future__ import annotations

import re
import secrets

ID_BYTES = 16
# fullmatch, never match: `$` would also accept a trailing newline.
_ID_RE = re.compile(r"[0-9a-f]{32}")


class InvalidId(ValueError):
    """An id is not 32 lowercase hex digits."""


def new_id() -> str:
    return secrets.token_hex(ID_BYTES)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def check_id(value: object) -> str:
    if not is_valid_id(value):
        raise InvalidId("an id is 32 lowercase hex digits")
    return value  # type: ignore[return-value]
