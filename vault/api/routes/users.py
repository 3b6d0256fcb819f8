"""Routes: the caller's own account and the public identity directory."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from vault.api.deps import CurrentAuth, CurrentUser, DbSession
from vault.services import accounts

router = APIRouter(prefix="/v1", tags=["users"])


class Me(BaseModel):
    user_id: str
    username: str
    created_at: datetime
    session_id: str
    identity: dict[str, str]


class IdentityResponse(BaseModel):
    username: str
    identity: dict[str, str]


@router.get("/me")
def me(auth: CurrentAuth) -> Me:
    user = auth.user
    return Me(
        user_id=user.id,
        username=user.username,
        created_at=user.created_at,
        session_id=auth.session.id,
        identity=accounts.identity_of(user),
    )


@router.get("/users/{username}/identity")
def user_identity(username: str, _caller: CurrentUser, db: DbSession) -> IdentityResponse:
    """The self-signed public record as stored; clients verify and pin it themselves."""
    return IdentityResponse(
        username=username, identity=accounts.find_identity(db, username=username)
    )
