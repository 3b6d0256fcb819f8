"""Typed dependencies for routes: the database session, settings, clock, caller address, the
blob store, the log signer and the authenticated user. create_app builds each once and keeps it
on the app; routes receive them only through the aliases below."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from vault.auth.credentials import AuthEnv
from vault.auth.keys import ServerKeys
from vault.auth.passwords import SecretHasher
from vault.auth.sessions import authenticate
from vault.config import Settings
from vault.db.models import AuthSession, User
from vault.db.models.accounts import SESSION_LOGIN, SESSION_RECOVERY
from vault.errors import NotAuthenticated
from vault.services.auditlog import LogSigner
from vault.storage import BlobStore

log = logging.getLogger("vault.api")
Clock = Callable[[], datetime]

_bearer = HTTPBearer(auto_error=False, description="Session token from POST /v1/auth/login")


def get_db(request: Request) -> Iterator[Session]:
    """One session per request; services own their commits, anything left is rolled back."""
    db = request.app.state.sessionmaker()
    try:
        yield db
    finally:
        _close(db, request)


def _close(db: Session, request: Request) -> None:
    # The session usually closes after the response is sent. If the database dropped the
    # connection in between, the closing rollback fails: the database has already discarded the
    # transaction and SQLAlchemy has invalidated the connection, so nothing is lost and there
    # is no reply left to change. A warning, not a crash; any other failure to close is a bug
    # and keeps its traceback.
    try:
        db.close()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        rid = request.scope.get("state", {}).get("request_id", "-")
        log.warning(
            "database connection lost closing the session request_id=%s: %s",
            rid,
            type(exc).__name__,
        )


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_server_keys(request: Request) -> ServerKeys:
    return request.app.state.server_keys


def get_hasher(request: Request) -> SecretHasher:
    return request.app.state.hasher


def get_blob_store(request: Request) -> BlobStore:
    return request.app.state.blob_store


def get_log_signer(request: Request) -> LogSigner:
    return request.app.state.log_signer


def client_address(request: Request) -> str:
    """The caller's IP address, canonical, or "unknown": never the raw string (T28).

    `serve` already replaces a peer that is not an address; this check holds for any other
    way the app is served.
    """
    from vault.addresses import source_address

    return source_address(request.client.host if request.client else None)


DbSession = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
ServerKeysDep = Annotated[ServerKeys, Depends(get_server_keys)]
HasherDep = Annotated[SecretHasher, Depends(get_hasher)]
BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]
LogSignerDep = Annotated[LogSigner, Depends(get_log_signer)]
ClientAddress = Annotated[str, Depends(client_address)]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Authenticated:
    user: User
    session: AuthSession


def _authenticated(
    purpose: str,
) -> Callable[[DbSession, SettingsDep, ClockDep, BearerCredentials], Authenticated]:
    def dependency(
        db: DbSession, settings: SettingsDep, clock: ClockDep, credentials: BearerCredentials
    ) -> Authenticated:
        if credentials is None or not credentials.credentials:
            raise NotAuthenticated("a bearer token is required")
        session, user = authenticate(
            db,
            token=credentials.credentials,
            purpose=purpose,
            idle_timeout=settings.session_idle_timeout,
            now=clock(),
        )
        return Authenticated(user=user, session=session)

    return dependency


current_login = _authenticated(SESSION_LOGIN)
current_recovery = _authenticated(SESSION_RECOVERY)


def current_user(auth: Annotated[Authenticated, Depends(current_login)]) -> User:
    return auth.user


CurrentAuth = Annotated[Authenticated, Depends(current_login)]
CurrentUser = Annotated[User, Depends(current_user)]
RecoveryAuth = Annotated[Authenticated, Depends(current_recovery)]


def get_auth_env(request: Request) -> AuthEnv:
    return request.app.state.auth_env


AuthEnvDep = Annotated[AuthEnv, Depends(get_auth_env)]
