"""The intake record: how a file came into a case (SPEC.md, "Intake record").

The client writes it at `put` into the file's encrypted metadata, so the uploader's signed
manifest covers it and the server never reads it. It is the uploader's signed statement, not a
fact the system observed: the SHA-256 is checkable against the content forever, the user id is
bound to the manifest signer, and the client time is a claim bounded by the audit leaf that
recorded the upload. The rest (name, mtime, source, note) is what the uploader said.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from vault.protocol.ids import is_valid_id
from vault.protocol.text import REFUSED_CATEGORIES, is_clean_text

LABEL_INTAKE = "cv1/intake"
MAX_ORIGINAL_NAME_CHARS = 255
MAX_SOURCE_CHARS = 500
MAX_NOTE_CHARS = 4000
MAX_CLIENT_VERSION_CHARS = 64
# How far a client clock may run ahead of the server's before the claim is refused.
MAX_CLOCK_AHEAD_SECONDS = 300

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CLIENT_VERSION = re.compile(r"[\x21-\x7e][\x20-\x7e]*")
_INT_MAX = 2**63 - 1
_KEYS = frozenset(
    {"v", "sha256", "original_name", "original_mtime", "taken_in_by", "taken_in_at", "source",
     "note", "client_version"}
)


class IntakeError(ValueError):
    """An intake record is malformed, or does not fit the upload it claims to describe."""


@dataclass(frozen=True)
class IntakeRecord:
    sha256: str  # hex SHA-256 of the original bytes: the chain-of-custody hash
    original_name: str
    original_mtime: int | None  # seconds since the epoch, UTC; None when the source had none
    taken_in_by: str  # user id of the uploader
    taken_in_at: int  # the uploader's clock, seconds since the epoch, UTC
    source: str = ""
    note: str = ""
    client_version: str = "casevault"

    def __post_init__(self) -> None:
        _check(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "v": LABEL_INTAKE,
            "sha256": self.sha256,
            "original_name": self.original_name,
            "original_mtime": self.original_mtime,
            "taken_in_by": self.taken_in_by,
            "taken_in_at": self.taken_in_at,
            "source": self.source,
            "note": self.note,
            "client_version": self.client_version,
        }


def _uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT_MAX


_CHECKS: dict[str, tuple[Any, str]] = {
    "v": (lambda v: v == LABEL_INTAKE, f"v is {LABEL_INTAKE}"),
    "sha256": (
        lambda v: isinstance(v, str) and _HEX64.fullmatch(v) is not None,
        "sha256 is 64 lowercase hex digits",
    ),
    "original_name": (
        lambda v: is_clean_text(v, max_chars=MAX_ORIGINAL_NAME_CHARS, allow_empty=False),
        f"original_name is clean NFC text of 1 to {MAX_ORIGINAL_NAME_CHARS} characters",
    ),
    "original_mtime": (lambda v: v is None or _uint(v), "original_mtime is seconds or null"),
    "taken_in_by": (is_valid_id, "taken_in_by is a user id"),
    "taken_in_at": (_uint, "taken_in_at is seconds"),
    "source": (
        lambda v: is_clean_text(v, max_chars=MAX_SOURCE_CHARS),
        f"source is clean NFC text of at most {MAX_SOURCE_CHARS} characters",
    ),
    "note": (
        lambda v: is_clean_text(v, max_chars=MAX_NOTE_CHARS),
        f"note is clean NFC text of at most {MAX_NOTE_CHARS} characters",
    ),
    "client_version": (
        lambda v: isinstance(v, str)
        and len(v) <= MAX_CLIENT_VERSION_CHARS
        and _CLIENT_VERSION.fullmatch(v) is not None,
        f"client_version is printable ASCII of 1 to {MAX_CLIENT_VERSION_CHARS} characters",
    ),
}


def _check(obj: Any) -> None:
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise IntakeError("an intake record has exactly its fields")
    for name, (check, rule) in _CHECKS.items():
        if not check(obj[name]):
            raise IntakeError(rule)


def parse_intake(obj: Any) -> IntakeRecord:
    """Strict parse: exactly the keys, each of its type and bounds."""
    _check(obj)
    return IntakeRecord(**{k: v for k, v in obj.items() if k != "v"})


def clean_original_name(raw: str) -> str:
    """What the client records as original_name for a name the operating system gives it.

    File systems allow names this record refuses (a newline, U+202E, undecodable bytes that
    Python carries as surrogates). The client keeps the evidence of such a name rather than
    refuse the file: each refused character becomes U+FFFD, and the result is NFC and cut to the
    bound. The SHA-256, not the name, identifies the content.
    """
    text = unicodedata.normalize(
        "NFC",
        "".join(
            "\ufffd" if unicodedata.category(ch) in REFUSED_CATEGORIES else ch for ch in raw
        ),
    )
    text = text[:MAX_ORIGINAL_NAME_CHARS]
    return text if text else "\ufffd"


def check_intake_origin(intake: IntakeRecord, *, uploader: str, logged_at: int) -> None:
    """Does the intake fit the upload that first carried it?

    `uploader` is the signer of the manifest of the version that took the content in, and
    `logged_at` the server time of that upload's audit leaf (verified against a checkpoint).
    The intake names that uploader, and its client time is no later than the leaf time (plus
    a small allowance for clock drift): a claim of having taken a file in after it was
    already in the log is refused.
    """
    if intake.taken_in_by != uploader:
        raise IntakeError("the intake names someone other than the uploader")
    if intake.taken_in_at > logged_at + MAX_CLOCK_AHEAD_SECONDS:
        raise IntakeError("the intake time is later than the audit log's record of the upload")
