"""Checking credentials: attempt limits first, then the auth key, then the second factor.

`check_credentials` is the one check that login, activation and recovery share, failure events
included. The order matters. Limits are counted before any argon2 work so guessing costs the
attacker a slot, not the server CPU; the second factor is looked at only after the auth key
verified, so someone without the key cannot burn a user's TOTP time step or recovery codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from vault.auth import ratelimit, totp
from vault.auth.keys import ServerKeys
from vault.auth.passwords import SecretHasher
from vault.config import Settings
from vault.db.models import TotpRecoveryCode, User
from vault.errors import InvalidCredentials, InvalidRequest, RateLimited
from vault.protocol.encoding import EncodingError, b64d
from vault.protocol.events import Action, CredentialCheck
from vault.protocol.usernames import USERNAME_RE as USERNAME_RE
from vault.protocol.usernames import is_valid_username
from vault.services.events import RESULT_FAILURE, record_aggregated_event, record_event

FACTOR_TOTP = "totp"
FACTOR_RECOVERY_CODE = "recovery_code"
AUTH_SECRET_BYTES = 32


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


@dataclass(frozen=True)
class Refusal:
    """Which limit refused an attempt: `limited_by` "address" or "account", and its bucket."""

    limited_by: str
    bucket: str
    error: RateLimited


def count_attempt(env: AuthEnv, *, username: str, source: str, now: datetime) -> Refusal | None:
    """Count one credential attempt per source address and per account name (known or not);
    returns the refusal when a limit is used up (the address is counted first)."""
    settings = env.settings
    limits = (
        ("address", ratelimit.bucket_name("login-address", source),
         settings.rate_limit_address_attempts),
        ("account", account_bucket(username), settings.rate_limit_account_attempts),
    )
    for limited_by, bucket, limit in limits:
        try:
            ratelimit.hit(
                env.sessionmaker, bucket=bucket, limit=limit,
                window=settings.rate_limit_window, now=now,
            )
        except RateLimited as exc:
            return Refusal(limited_by=limited_by, bucket=bucket, error=exc)
    return None


def _refuse(db: Session, env: AuthEnv, *, check: CredentialCheck, refusal: Refusal,
            source: str, now: datetime) -> RateLimited:
    """Log a refused attempt as an aggregated event (T30) and return the 429 to raise.

    Counted per address when the address limit refused, per account (all addresses together)
    when the account limit did: each key adds at most two leaves per window, and one address
    opens at most its own key and (address limit / account limit) account keys per window,
    since an account key needs that many attempts to get past the address limit first.
    """
    record_aggregated_event(
        db, action=check.ratelimited, result=RESULT_FAILURE, source=source, now=now,
        window=env.settings.event_aggregation_window,
        per_source=refusal.limited_by == "address",
        scope={"limited_by": refusal.limited_by, "bucket": refusal.bucket},
    )
    db.commit()
    return refusal.error


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


def decode_secret(value: str, name: str, size: int = AUTH_SECRET_BYTES) -> bytes:
    try:
        data = b64d(value)
    except EncodingError as exc:
        raise InvalidRequest(f"{name} is not base64url") from exc
    if len(data) != size:
        raise InvalidRequest(f"{name} must be {size} bytes")
    return data


def find_user(db: Session, username: str) -> User | None:
    # No account has a name outside USERNAME_RE; skipping the query also keeps bytes such as
    # NUL, which PostgreSQL refuses in text, from turning a client mistake into a 500.
    if not is_valid_username(username):
        return None
    return db.execute(select(User).where(User.username == username)).scalar_one_or_none()


def _fail(
    db: Session, *, action: Action, user: User | None, source: str, now: datetime, reason: str
) -> InvalidCredentials:
    db.rollback()
    record_event(
        db, action=action, result=RESULT_FAILURE, actor_id=user.id if user else None,
        source=source, now=now, detail={"reason": reason},
    )
    db.commit()
    return InvalidCredentials()


def check_credentials(
    db: Session,
    env: AuthEnv,
    *,
    username: str,
    auth_key: str,
    code: str,
    status: str,
    check: CredentialCheck,
    source: str,
    now: datetime,
    allow_recovery_code: bool = True,
    recovery_proof: bool = False,
) -> User:
    """Limits, then the key (auth_key or recovery proof), then the second factor."""
    refusal = count_attempt(env, username=username, source=source, now=now)
    if refusal is not None:
        raise _refuse(db, env, check=check, refusal=refusal, source=source, now=now)
    user = find_user(db, username) if len(username) <= 64 else None
    if user is not None and user.status != status:
        user = None
    try:
        secret = decode_secret(auth_key, "key")
    except InvalidRequest:
        secret = b""
    stored = None
    if user is not None:
        stored = user.recovery_auth_hash if recovery_proof else user.auth_key_hash
    # End the read transaction before hashing: it gives the database connection back to the
    # pool. A burst of logins queued on the hash slots otherwise held every pooled connection,
    # and other users' requests waited up to seconds for one (BENCHMARKS.md section 2). Nothing
    # has been written yet; the loaded user stays usable (expire_on_commit=False).
    db.commit()
    # Verified against a dummy hash when the account is unknown: same cost, same answer.
    if not env.hasher.verify(stored, secret) or user is None:
        reason = "unknown_account" if user is None else "bad_key"
        raise _fail(db, action=check.failed, user=user, source=source, now=now,
                    reason=reason)
    # A stronger or re-shaped hash is computed before the second factor's write: on SQLite
    # that write takes the database's single write lock, which must not be held for a hash.
    rehashed = None
    if not recovery_proof and env.hasher.needs_rehash(user.auth_key_hash):
        rehashed = env.hasher.hash(secret)
    try:
        verify_second_factor(
            db, env, user=user, code=code, now=now, allow_recovery_code=allow_recovery_code
        )
    except SecondFactorRejected as rejected:
        action = Action.TOTP_REPLAY if rejected.replay else check.failed
        raise _fail(db, action=action, user=user, source=source, now=now,
                    reason="totp_replay" if rejected.replay else "bad_second_factor") from None
    if rehashed is not None:
        user.auth_key_hash = rehashed
    return user
