"""Routes: registration, activation, prelogin, login, logout, recovery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from vault.api.deps import (
    AuthEnvDep,
    ClientAddress,
    ClockDep,
    CurrentAuth,
    DbSession,
    RecoveryAuth,
)
from vault.services import accounts
from vault.services.accounts import LoginResult

router = APIRouter(prefix="/v1", tags=["accounts"])

_B64 = r"^[A-Za-z0-9_-]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KdfParams(_Body):
    salt: str = Field(max_length=64, pattern=_B64)
    ops: int = Field(ge=1, le=2**31)
    mem: int = Field(ge=1, le=2**62)

    def to_service(self) -> accounts.Kdf:
        return accounts.Kdf(salt=self.salt, ops=self.ops, mem=self.mem)


class SignedRecord(_Body):
    body: str = Field(max_length=65536, pattern=_B64)
    sig: str = Field(max_length=256, pattern=_B64)


class RegisterRequest(_Body):
    username: str = Field(pattern=accounts.USERNAME_RE.pattern)
    kdf: KdfParams
    auth_key: str = Field(max_length=128, pattern=_B64)
    identity: SignedRecord
    identity_wrapped_kek: str = Field(max_length=100_000, pattern=_B64)
    identity_wrapped_recovery: str = Field(max_length=100_000, pattern=_B64)
    recovery_auth: str = Field(max_length=128, pattern=_B64)
    invite: str | None = Field(default=None, max_length=128)


class RegisterResponse(BaseModel):
    user_id: str
    username: str
    status: str
    totp_uri: str
    recovery_codes: list[str]


class PreloginRequest(_Body):
    username: str = Field(max_length=256)


class Credentials(_Body):
    # Deliberately loose: a malformed name or key is the same generic failure as a wrong one.
    username: str = Field(max_length=256)
    auth_key: str = Field(max_length=256)
    totp: str = Field(max_length=64)


class LoginResponse(BaseModel):
    token: str
    session_id: str
    expires_at: datetime
    idle_timeout: int
    user_id: str
    username: str
    identity: dict[str, str]
    identity_wrapped_kek: str
    kdf: dict[str, Any]


class RecoveryBeginRequest(_Body):
    username: str = Field(max_length=256)
    recovery_auth: str = Field(max_length=256)
    totp: str = Field(max_length=64)


class RecoveryBeginResponse(BaseModel):
    recovery_token: str
    expires_at: datetime
    user_id: str
    identity: dict[str, str]
    identity_wrapped_recovery: str


class RecoveryCompleteRequest(_Body):
    kdf: KdfParams
    auth_key: str = Field(max_length=128, pattern=_B64)
    identity_wrapped_kek: str = Field(max_length=100_000, pattern=_B64)
    # The recovery code is rotated at every recovery: the identity wrapped under the new code,
    # and the new code's verifier (SPEC 5, recovery).
    identity_wrapped_recovery: str = Field(max_length=100_000, pattern=_B64)
    recovery_auth: str = Field(max_length=128, pattern=_B64)


class RecoveryCompleteResponse(BaseModel):
    sessions_revoked: int


def _login_response(result: LoginResult) -> LoginResponse:
    user = result.user
    return LoginResponse(
        token=result.token,
        session_id=result.session.id,
        expires_at=result.session.expires_at,
        idle_timeout=result.idle_timeout,
        user_id=user.id,
        username=user.username,
        identity=accounts.identity_of(user),
        identity_wrapped_kek=user.identity_wrapped_kek,
        kdf=accounts.Kdf(
            salt=accounts.b64e(user.kdf_salt), ops=user.kdf_ops, mem=user.kdf_mem
        ).to_json(),
    )


# Sync routes: FastAPI runs them in its threadpool, so argon2 work never blocks the event loop.


@router.post("/accounts/prelogin")
def prelogin(body: PreloginRequest, db: DbSession, env: AuthEnvDep) -> dict[str, Any]:
    return accounts.prelogin(db, env, username=body.username).to_json()


@router.post("/accounts/register", status_code=201)
def register(
    body: RegisterRequest, db: DbSession, env: AuthEnvDep, clock: ClockDep, source: ClientAddress
) -> RegisterResponse:
    enrolment = accounts.register(
        db,
        env,
        username=body.username,
        kdf=body.kdf.to_service(),
        auth_key=body.auth_key,
        identity=body.identity.model_dump(),
        identity_wrapped_kek=body.identity_wrapped_kek,
        identity_wrapped_recovery=body.identity_wrapped_recovery,
        recovery_auth=body.recovery_auth,
        invite=body.invite,
        source=source,
        now=clock(),
    )
    return RegisterResponse(
        user_id=enrolment.user_id,
        username=enrolment.username,
        status="pending",
        totp_uri=enrolment.totp_uri,
        recovery_codes=enrolment.recovery_codes,
    )


@router.post("/accounts/activate")
def activate(
    body: Credentials, db: DbSession, env: AuthEnvDep, clock: ClockDep, source: ClientAddress
) -> LoginResponse:
    result = accounts.activate(
        db, env, username=body.username, auth_key=body.auth_key, totp_code=body.totp,
        source=source, now=clock(),
    )
    return _login_response(result)


@router.post("/auth/login")
def login(
    body: Credentials, db: DbSession, env: AuthEnvDep, clock: ClockDep, source: ClientAddress
) -> LoginResponse:
    result = accounts.login(
        db, env, username=body.username, auth_key=body.auth_key, totp_code=body.totp,
        source=source, now=clock(),
    )
    return _login_response(result)


@router.post("/auth/logout", status_code=204)
def logout(auth: CurrentAuth, db: DbSession, clock: ClockDep, source: ClientAddress) -> Response:
    accounts.end_sessions(
        db, user=auth.user, session_id=auth.session.id, source=source, now=clock()
    )
    return Response(status_code=204)


@router.post("/accounts/recovery/begin")
def recovery_begin(
    body: RecoveryBeginRequest,
    db: DbSession,
    env: AuthEnvDep,
    clock: ClockDep,
    source: ClientAddress,
) -> RecoveryBeginResponse:
    start = accounts.begin_recovery(
        db, env, username=body.username, recovery_auth=body.recovery_auth, totp_code=body.totp,
        source=source, now=clock(),
    )
    return RecoveryBeginResponse(
        recovery_token=start.token,
        expires_at=start.session.expires_at,
        user_id=start.user.id,
        identity=accounts.identity_of(start.user),
        identity_wrapped_recovery=start.user.identity_wrapped_recovery,
    )


@router.post("/accounts/recovery/complete")
def recovery_complete(
    body: RecoveryCompleteRequest,
    auth: RecoveryAuth,
    db: DbSession,
    env: AuthEnvDep,
    clock: ClockDep,
    source: ClientAddress,
) -> RecoveryCompleteResponse:
    revoked = accounts.complete_recovery(
        db, env, user=auth.user, kdf=body.kdf.to_service(), auth_key=body.auth_key,
        identity_wrapped_kek=body.identity_wrapped_kek,
        identity_wrapped_recovery=body.identity_wrapped_recovery,
        recovery_auth=body.recovery_auth, source=source, now=clock(),
    )
    return RecoveryCompleteResponse(sessions_revoked=len(revoked))
