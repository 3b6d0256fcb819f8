"""TOTP (RFC 6238): 30-second steps, 6 digits, HMAC-SHA1, 160-bit secrets, +-1 step.

This module only computes; accepting a step once per account is an atomic database update done
by the accounts service (see `vault.services.accounts`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp

TOTP_PERIOD = 30
TOTP_DIGITS = 6
TOTP_SECRET_BYTES = 20  # 160 bits, RFC 4226 section 4 recommendation
TOTP_WINDOW = 1  # steps accepted either side of now, for clock drift
ISSUER = "CaseVault"

RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 10  # 80 bits, 16 base32 characters


def new_secret() -> bytes:
    return secrets.token_bytes(TOTP_SECRET_BYTES)


def _b32(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii")


def provisioning_uri(secret: bytes, username: str) -> str:
    return pyotp.TOTP(_b32(secret), digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=username, issuer_name=ISSUER
    )


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // TOTP_PERIOD


def code_at_step(secret: bytes, step: int) -> str:
    return pyotp.TOTP(_b32(secret), digits=TOTP_DIGITS, interval=TOTP_PERIOD).at(
        step * TOTP_PERIOD
    )


def looks_like_totp(code: str) -> bool:
    return len(code) == TOTP_DIGITS and code.isascii() and code.isdigit()


def matching_step(secret: bytes, code: str, now: datetime) -> int | None:
    """The time step within +-TOTP_WINDOW whose code equals `code`, else None."""
    if not looks_like_totp(code):
        return None
    current = time_step(now)
    found = None
    # Check every candidate (no early exit) so timing does not reveal which step matched.
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(code_at_step(secret, step), code):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    """Printable one-time codes like ABCD-EFGH-IJKL-MNOP."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode("ascii")
        codes.append("-".join(raw[i : i + 4] for i in range(0, len(raw), 4)))
    return codes


def normalize_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch not in "- ")


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalize_recovery_code(code).encode("ascii", "replace")).hexdigest()
