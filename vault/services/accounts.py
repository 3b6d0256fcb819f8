"""Account use cases: register, activate, prelogin, login, recovery, identity, invites.

Each function owns its transaction. Failure events are committed before the error is raised.
Every credential failure is the one generic InvalidCredentials; the reason goes only to the
audit event, never to the caller.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.auth import ratelimit, totp
from vault.auth.credentials import (
    USERNAME_RE,
    AuthEnv,
    account_bucket,
    check_credentials,
    decode_secret,
    find_user,
)
from vault.auth.sessions import create_session, revoke_sessions
from vault.auth.tokens import hash_token
from vault.db.models import AuthSession, Invite, TotpRecoveryCode, User
from vault.db.models.accounts import (
    ACCOUNT_ACTIVE,
    ACCOUNT_PENDING,
    SESSION_LOGIN,
    SESSION_RECOVERY,
)
from vault.errors import (
    Conflict,
    InvalidIdentityRecord,
    InvalidRequest,
    InviteRequired,
    NotFound,
    UsernameTaken,
    WeakKdfParameters,
)
from vault.protocol import kdf as kdf_limits
from vault.protocol.encoding import EncodingError, b64d, b64e, canonical_json
from vault.protocol.events import Action, CredentialCheck
from vault.protocol.ids import new_id
from vault.protocol.records import RecordError, verify_identity_record
from vault.services.events import record_event

KDF_SALT_BYTES = 16
MAX_WRAPPED_BYTES = 64 * 1024


@dataclass(frozen=True)
class Kdf:
    salt: str  # b64
    ops: int
    mem: int

    def to_json(self) -> dict[str, Any]:
        return {"salt": self.salt, "ops": self.ops, "mem": self.mem}


@dataclass(frozen=True)
class Enrolment:
    user_id: str
    username: str
    totp_uri: str
    recovery_codes: list[str]


@dataclass(frozen=True)
class LoginResult:
    token: str
    session: AuthSession
    user: User
    idle_timeout: int


@dataclass(frozen=True)
class RecoveryStart:
    token: str
    session: AuthSession
    user: User


# ---------------------------------------------------------------- input checks


def _opaque(value: str, name: str) -> str:
    try:
        data = b64d(value)
    except EncodingError as exc:
        raise InvalidRequest(f"{name} is not base64url") from exc
    if not 0 < len(data) <= MAX_WRAPPED_BYTES:
        raise InvalidRequest(f"{name} must be 1 to {MAX_WRAPPED_BYTES} bytes")
    return value


def _check_kdf(env: AuthEnv, kdf: Kdf) -> bytes:
    salt = decode_secret(kdf.salt, "kdf.salt", KDF_SALT_BYTES)
    min_ops, min_mem = env.settings.kdf_floor()
    if kdf.ops < min_ops or kdf.mem < min_mem:
        raise WeakKdfParameters(f"KDF parameters must be at least ops={min_ops}, mem={min_mem}")
    if kdf.ops > kdf_limits.MAX_OPS or kdf.mem > kdf_limits.MAX_MEM:
        raise InvalidRequest("KDF parameters are out of range")
    return salt


def _check_username(username: str) -> None:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidRequest("a username is 3 to 32 characters of a-z 0-9 . _ -")


# ---------------------------------------------------------------- registration


def register(
    db: Session,
    env: AuthEnv,
    *,
    username: str,
    kdf: Kdf,
    auth_key: str,
    identity: dict[str, Any],
    identity_wrapped_kek: str,
    identity_wrapped_recovery: str,
    recovery_auth: str,
    invite: str | None,
    source: str,
    now: datetime,
) -> Enrolment:
    """Create a pending account with a fresh TOTP secret and one-time recovery codes."""
    settings = env.settings
    ratelimit.hit(
        env.sessionmaker,
        bucket=ratelimit.bucket_name("register-address", source),
        limit=settings.rate_limit_register_attempts,
        window=settings.rate_limit_window,
        now=now,
    )
    _check_username(username)
    salt = _check_kdf(env, kdf)
    key = decode_secret(auth_key, "auth_key")
    recovery = decode_secret(recovery_auth, "recovery_auth")
    _opaque(identity_wrapped_kek, "identity_wrapped_kek")
    _opaque(identity_wrapped_recovery, "identity_wrapped_recovery")
    try:
        record = verify_identity_record(identity)
    except (RecordError, EncodingError, TypeError, ValueError) as exc:
        raise InvalidIdentityRecord(str(exc) or None) from exc
    if record.username != username:
        raise InvalidIdentityRecord("the identity record names another user")

    # Hashed before the first write: on SQLite a write takes the database's single write lock,
    # which must not be held for two argon2 runs.
    auth_key_hash, recovery_auth_hash = env.hasher.hash(key), env.hasher.hash(recovery)
    if invite is not None or settings.invite_only:
        _consume_invite(db, code=invite or "", user_id=record.user_id, now=now)
    existing = find_user(db, username)
    if existing is not None:
        stale = existing.status == ACCOUNT_PENDING and now >= existing.created_at + timedelta(
            seconds=settings.pending_account_lifetime
        )
        if not stale:
            raise UsernameTaken()
        db.delete(existing)
        db.flush()
    if db.get(User, record.user_id) is not None:
        raise Conflict("that user id is taken; make a new identity")

    secret = totp.new_secret()
    user = User(
        id=record.user_id,
        username=username,
        status=ACCOUNT_PENDING,
        created_at=now,
        activated_at=None,
        kdf_salt=salt,
        kdf_ops=kdf.ops,
        kdf_mem=kdf.mem,
        auth_key_hash=auth_key_hash,
        recovery_auth_hash=recovery_auth_hash,
        identity_body=record.signed["body"],
        identity_sig=record.signed["sig"],
        identity_wrapped_kek=identity_wrapped_kek,
        identity_wrapped_recovery=identity_wrapped_recovery,
        totp_secret_sealed=env.keys.seal_totp_secret(record.user_id, secret),
        last_totp_step=0,
    )
    codes = totp.new_recovery_codes()
    try:
        db.add(user)
        db.flush()  # the user row first: recovery codes reference it
        db.add_all(
            TotpRecoveryCode(user_id=user.id, code_hash=totp.hash_recovery_code(c))
            for c in codes
        )
        record_event(
            db, action=Action.REGISTER, actor_id=user.id, source=source, now=now,
            detail={"username": username},
        )
        db.commit()
    except IntegrityError as exc:
        # Lost a race for the same name or id against a concurrent registration.
        db.rollback()
        raise UsernameTaken() from exc
    return Enrolment(
        user_id=user.id,
        username=username,
        totp_uri=totp.provisioning_uri(secret, username),
        recovery_codes=codes,
    )


def _consume_invite(db: Session, *, code: str, user_id: str, now: datetime) -> None:
    result = db.execute(
        update(Invite)
        .where(Invite.code_hash == hash_token(code.strip()), Invite.used_at.is_(None))
        .values(used_at=now, used_by=user_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InviteRequired()


def create_invite(db: Session, *, now: datetime) -> str:
    """A one-time invite code; only its hash is stored."""
    code = secrets.token_urlsafe(16)
    db.add(Invite(id=new_id(), code_hash=hash_token(code), created_at=now))
    record_event(db, action=Action.INVITE_CREATED, now=now)
    db.commit()
    return code


# ---------------------------------------------------------------- prelogin and login


def prelogin(db: Session, env: AuthEnv, *, username: str) -> Kdf:
    """Salt and KDF parameters; a deterministic fake answer for unknown names."""
    user = find_user(db, username) if len(username) <= 256 else None
    if user is not None:
        return Kdf(salt=b64e(user.kdf_salt), ops=user.kdf_ops, mem=user.kdf_mem)
    ops, mem = env.settings.kdf_default()
    return Kdf(salt=b64e(env.keys.fake_kdf_salt(username, KDF_SALT_BYTES)), ops=ops, mem=mem)


def _open_session(
    db: Session, env: AuthEnv, *, user: User, source: str, now: datetime
) -> LoginResult:
    issued = create_session(
        db, user_id=user.id, purpose=SESSION_LOGIN,
        lifetime=env.settings.session_absolute_lifetime, now=now, source=source,
    )
    record_event(
        db, action=Action.SESSION_CREATED, actor_id=user.id, source=source, now=now,
        detail={"session_id": issued.session.id},
    )
    return LoginResult(
        token=issued.token, session=issued.session, user=user,
        idle_timeout=env.settings.session_idle_timeout,
    )


def activate(
    db: Session, env: AuthEnv, *, username: str, auth_key: str, totp_code: str, source: str,
    now: datetime,
) -> LoginResult:
    """Confirm TOTP enrolment with a first valid code; the account becomes active and the
    caller is logged in (the code's time step is used up, so no second login is needed)."""
    user = check_credentials(
        db, env, username=username, auth_key=auth_key, code=totp_code, status=ACCOUNT_PENDING,
        check=CredentialCheck.ACTIVATE, source=source, now=now, allow_recovery_code=False,
    )
    user.status = ACCOUNT_ACTIVE
    user.activated_at = now
    record_event(db, action=Action.ACTIVATE_OK, actor_id=user.id, source=source, now=now)
    record_event(
        db, action=Action.KEY_REGISTERED, actor_id=user.id, source=source, now=now,
        signed_record=_identity_json(user),
    )
    result = _open_session(db, env, user=user, source=source, now=now)
    db.commit()
    ratelimit.reset(env.sessionmaker, bucket=account_bucket(username))
    return result


def login(
    db: Session, env: AuthEnv, *, username: str, auth_key: str, totp_code: str, source: str,
    now: datetime,
) -> LoginResult:
    """Both factors in one request; any failure is the one generic InvalidCredentials."""
    user = check_credentials(
        db, env, username=username, auth_key=auth_key, code=totp_code, status=ACCOUNT_ACTIVE,
        check=CredentialCheck.LOGIN, source=source, now=now,
    )
    record_event(db, action=Action.LOGIN_OK, actor_id=user.id, source=source, now=now)
    result = _open_session(db, env, user=user, source=source, now=now)
    db.commit()
    ratelimit.reset(env.sessionmaker, bucket=account_bucket(username))
    return result


# ---------------------------------------------------------------- sessions


def end_sessions(
    db: Session, *, user: User, source: str, now: datetime, session_id: str | None = None
) -> list[str]:
    """Revoke one session of `user` (NotFound if it is not theirs or not live) or all."""
    revoked = revoke_sessions(db, user_id=user.id, now=now, session_id=session_id)
    if session_id is not None and not revoked:
        db.rollback()
        raise NotFound("no such session")
    record_event(
        db, action=Action.SESSION_REVOKED, actor_id=user.id, source=source, now=now,
        detail={"session_ids": sorted(revoked)},
    )
    db.commit()
    return revoked


# ---------------------------------------------------------------- recovery


def begin_recovery(
    db: Session, env: AuthEnv, *, username: str, recovery_auth: str, totp_code: str,
    source: str, now: datetime,
) -> RecoveryStart:
    """Prove possession of the recovery key plus a live TOTP code (recovery codes for TOTP do
    not count here: recovery never bypasses the authenticator)."""
    user = check_credentials(
        db, env, username=username, auth_key=recovery_auth, code=totp_code,
        status=ACCOUNT_ACTIVE, check=CredentialCheck.RECOVERY, source=source, now=now,
        allow_recovery_code=False, recovery_proof=True,
    )
    issued = create_session(
        db, user_id=user.id, purpose=SESSION_RECOVERY,
        lifetime=env.settings.recovery_token_lifetime, now=now, source=source,
    )
    record_event(db, action=Action.RECOVERY_BEGIN, actor_id=user.id, source=source, now=now)
    db.commit()
    return RecoveryStart(token=issued.token, session=issued.session, user=user)


def complete_recovery(
    db: Session, env: AuthEnv, *, user: User, kdf: Kdf, auth_key: str,
    identity_wrapped_kek: str, source: str, now: datetime,
) -> list[str]:
    """Replace the passphrase material; every session (and the recovery token) ends."""
    salt = _check_kdf(env, kdf)
    key = decode_secret(auth_key, "auth_key")
    _opaque(identity_wrapped_kek, "identity_wrapped_kek")
    user.kdf_salt, user.kdf_ops, user.kdf_mem = salt, kdf.ops, kdf.mem
    user.auth_key_hash = env.hasher.hash(key)
    user.identity_wrapped_kek = identity_wrapped_kek
    revoked = revoke_sessions(db, user_id=user.id, now=now)
    record_event(
        db, action=Action.RECOVERY_COMPLETE, actor_id=user.id, source=source, now=now,
        detail={"sessions_revoked": len(revoked)},
    )
    db.commit()
    return revoked


# ---------------------------------------------------------------- identity directory


def _identity_json(user: User) -> str:
    return canonical_json(identity_of(user)).decode("utf-8")


def identity_of(user: User) -> dict[str, str]:
    return {"body": user.identity_body, "sig": user.identity_sig}


def find_identity(db: Session, *, username: str) -> dict[str, str]:
    user = find_user(db, username) if len(username) <= 64 else None
    if user is None or user.status != ACCOUNT_ACTIVE:
        raise NotFound("no such user")
    return identity_of(user)

