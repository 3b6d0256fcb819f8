"""Bearer-token sessions: created, authenticated (absolute and idle expiry), revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vault.auth.tokens import hash_token, new_token
from vault.db.models import AuthSession, User
from vault.db.models.accounts import ACCOUNT_ACTIVE
from vault.errors import NotAuthenticated
from vault.protocol.ids import new_id

# Writing last_used_at on every request would turn each read into a write; a minute is plenty
# of precision for an idle timeout measured in tens of minutes.
_TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedSession:
    token: str
    session: AuthSession


def create_session(
    db: Session,
    *,
    user_id: str,
    purpose: str,
    lifetime: int,
    now: datetime,
    source: str | None,
) -> IssuedSession:
    """Add a session to the caller's transaction; the token is returned once, never stored."""
    token = new_token()
    row = AuthSession(
        id=new_id(),
        user_id=user_id,
        token_hash=hash_token(token),
        purpose=purpose,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        revoked_at=None,
        source=source,
    )
    db.add(row)
    db.flush()
    return IssuedSession(token=token, session=row)


def authenticate(
    db: Session, *, token: str, purpose: str, idle_timeout: int, now: datetime
) -> tuple[AuthSession, User]:
    """The live session and active user behind `token`, or NotAuthenticated."""
    row = db.execute(
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.token_hash == hash_token(token))
    ).first()
    if row is None:
        raise NotAuthenticated("invalid or expired token")
    session, user = row
    if (
        session.purpose != purpose
        or session.revoked_at is not None
        or now >= session.expires_at
        or now >= session.last_used_at + timedelta(seconds=idle_timeout)
        or user.status != ACCOUNT_ACTIVE
    ):
        raise NotAuthenticated("invalid or expired token")
    if now - session.last_used_at >= _TOUCH_INTERVAL:
        session.last_used_at = now
        db.commit()
    return session, user


def revoke_sessions(
    db: Session, *, user_id: str, now: datetime, session_id: str | None = None
) -> list[str]:
    """Revoke one session of the user, or all of them; returns the ids revoked."""
    stmt = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(AuthSession.id)
        .execution_options(synchronize_session=False)
    )
    if session_id is not None:
        stmt = stmt.where(AuthSession.id == session_id)
    return list(db.execute(stmt).scalars())


def live_sessions(
    db: Session, *, user_id: str, idle_timeout: int, now: datetime
) -> list[AuthSession]:
    rows = db.execute(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
        .order_by(AuthSession.created_at)
    ).scalars()
    idle = timedelta(seconds=idle_timeout)
    return [s for s in rows if now < s.last_used_at + idle]
