"""Routes: list and revoke the caller's sessions."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel

from vault.api.deps import ClientAddress, ClockDep, CurrentAuth, DbSession, SettingsDep
from vault.auth.sessions import live_sessions
from vault.errors import NotFound
from vault.protocol.ids import is_valid_id
from vault.services import accounts

router = APIRouter(prefix="/v1", tags=["sessions"])


class SessionInfo(BaseModel):
    session_id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    source: str | None
    current: bool


class RevokedResponse(BaseModel):
    revoked: int


@router.get("/sessions")
def list_sessions(
    auth: CurrentAuth, db: DbSession, settings: SettingsDep, clock: ClockDep
) -> list[SessionInfo]:
    rows = live_sessions(
        db, user_id=auth.user.id, idle_timeout=settings.session_idle_timeout, now=clock()
    )
    return [
        SessionInfo(
            session_id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            source=s.source,
            current=s.id == auth.session.id,
        )
        for s in rows
    ]


@router.delete("/sessions/{session_id}", status_code=204)
def revoke_session(
    session_id: str, auth: CurrentAuth, db: DbSession, clock: ClockDep, source: ClientAddress
) -> Response:
    if not is_valid_id(session_id):
        raise NotFound("no such session")
    accounts.end_sessions(db, user=auth.user, session_id=session_id, source=source, now=clock())
    return Response(status_code=204)


@router.delete("/sessions")
def revoke_all_sessions(
    auth: CurrentAuth, db: DbSession, clock: ClockDep, source: ClientAddress
) -> RevokedResponse:
    revoked = accounts.end_sessions(db, user=auth.user, source=source, now=clock())
    return RevokedResponse(revoked=len(revoked))
