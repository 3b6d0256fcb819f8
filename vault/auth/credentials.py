"""Checking credentials: attempt limits first, then the auth key, then the second factor.

The order matters. Limits are counted before any argon2 work so guessing costs the attacker a
slot, not the server CPU; the second factor is looked at only after the auth key verified, so
someone without the key cannot burn a user's TOTP time step or recovery codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from vault.auth import ratelimit, totp
from vault.auth.keys import ServerKeys
from vault.auth.passwords import SecretHasher
from vault.config import Settings
from vault.db.models import TotpRecoveryCode, User

FACTOR_TOTP = "totp"
FACTOR_RECOVERY_CODE = "recovery_code"


@dataclass(frozen=True)
class AuthEnv:
    """What the account services need besides a database session."""

    settings: Settings
    keys: ServerKeys
    hasher: SecretHasher
    sessionmaker: sessionmaker[Session]


class SecondFactorRejected(Exception):
    """The code did not verify; `replay` says it was valid but its time step was used."""

    def __init__(self, replay: bool) -> None:
        super().__init__("second factor rejected")
        self.replay = replay


def account_bucket(username: str) -> str:
    return ratelimit.bucket_name("login-account", username.strip().lower())


def count_attempt(env: AuthEnv, *, username: str, source: str, now: datetime) -> None:
    """Count one credential attempt per source address and per account name (known or not)."""
    settings = env.settings
    ratelimit.hit(
        env.sessionmaker,
        bucket=ratelimit.bucket_name("login-address", source),
        limit=settings.rate_limit_address_attempts,
        window=settings.rate_limit_window,
        now=now,
    )
    ratelimit.hit(
        env.sessionmaker,
        bucket=account_bucket(username),
        limit=settings.rate_limit_account_attempts,
        window=settings.rate_limit_window,
        now=now,
    )


def consume_totp_step(db: Session, *, user_id: str, step: int) -> bool:
    """Accept `step` for the account only if it is newer than every step accepted before.

    One conditional UPDATE: of two concurrent requests with the same code exactly one matches
    the row; and after step B was used, an older step A is refused too (no A-B-A).
    """
    result = db.execute(
        update(User)
        .where(User.id == user_id, User.last_totp_step < step)
        .values(last_totp_step=step)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def consume_recovery_code(db: Session, *, user_id: str, code: str, now: datetime) -> bool:
    """Use a one-time TOTP recovery code; a code works exactly once, also under concurrency."""
    result = db.execute(
        update(TotpRecoveryCode)
        .where(
            TotpRecoveryCode.user_id == user_id,
            TotpRecoveryCode.code_hash == totp.hash_recovery_code(code),
            TotpRecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def verify_second_factor(
    db: Session,
    env: AuthEnv,
    *,
    user: User,
    code: str,
    now: datetime,
    allow_recovery_code: bool = True,
) -> str:
    """Check and consume a TOTP code (or a TOTP recovery code); returns which factor was used.

    The consumption is part of the caller's transaction and counts once it commits.
    """
    code = code.strip()
    if totp.looks_like_totp(code):
        secret = env.keys.open_totp_secret(user.id, user.totp_secret_sealed)
        step = totp.matching_step(secret, code, now)
        if step is None:
            raise SecondFactorRejected(replay=False)
        if not consume_totp_step(db, user_id=user.id, step=step):
            raise SecondFactorRejected(replay=True)
        return FACTOR_TOTP
    if allow_recovery_code and consume_recovery_code(db, user_id=user.id, code=code, now=now):
        return FACTOR_RECOVERY_CODE
    raise SecondFactorRejected(replay=False)
