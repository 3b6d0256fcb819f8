"""What every case route checks before it acts: that the caller is a member with the role it
needs (a non-member sees the 404 of a missing case), the replayed membership log with the
identities it was verified against, and the client's opaque text and signed envelopes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.db.models import User
from vault.db.models.cases import (
    ROLE_EDITOR,
    ROLE_OWNER,
    ROLE_VIEWER,
    CaseMember,
    MembershipEntryRow,
)
from vault.errors import Forbidden, InvalidRequest, NotFound
from vault.protocol.encoding import EncodingError, b64d, canonical_json
from vault.protocol.ids import is_valid_id
from vault.protocol.membership import MembershipState, replay_membership
from vault.protocol.records import IdentityRecord, verify_identity_record

MAX_OPAQUE_TEXT = 96 * 1024
_RANK = {ROLE_VIEWER: 0, ROLE_EDITOR: 1, ROLE_OWNER: 2}


class CaseNotFound(NotFound):
    code = "not_found"
    title = "Case not found"


class InsufficientRole(Forbidden):
    code = "insufficient_role"
    title = "Your role in this case does not allow this"


class InvalidRecord(InvalidRequest):
    code = "invalid_record"
    title = "A signed record failed verification"


def signed_text(signed: dict[str, str]) -> str:
    """The canonical JSON text of an envelope, as the audit log stores it."""
    return canonical_json({"body": signed["body"], "sig": signed["sig"]}).decode("ascii")


def check_opaque(value: Any, name: str) -> str:
    """An opaque client blob: non-empty canonical base64url text of bounded size."""
    if not isinstance(value, str) or not value or len(value) > MAX_OPAQUE_TEXT:
        raise InvalidRequest(f"{name} must be base64url text of at most {MAX_OPAQUE_TEXT} chars")
    try:
        b64d(value)
    except EncodingError as exc:
        raise InvalidRequest(f"{name} is not canonical base64url") from exc
    return value


def require_member(
    db: Session, case_id: str, user_id: str, *, min_role: str = ROLE_VIEWER
) -> CaseMember:
    """The caller's membership row. A non-member gets the same 404 as for a missing case."""
    if not is_valid_id(case_id):
        raise CaseNotFound()
    member = db.get(CaseMember, (case_id, user_id))
    if member is None:
        raise CaseNotFound()
    if _RANK[member.role] < _RANK[min_role]:
        raise InsufficientRole(f"this needs the {min_role} role; you are {member.role}")
    return member


def identities_of(db: Session, user_ids: Iterable[str]) -> dict[str, IdentityRecord]:
    """Verified identity records of the given users (unknown ids are simply absent)."""
    wanted = {u for u in user_ids if is_valid_id(u)}
    if not wanted:
        return {}
    out: dict[str, IdentityRecord] = {}
    for user in db.scalars(select(User).where(User.id.in_(wanted))):
        out[user.id] = verify_identity_record(
            {"body": user.identity_body, "sig": user.identity_sig}
        )
    return out


def membership_entries(db: Session, case_id: str) -> list[MembershipEntryRow]:
    return list(
        db.scalars(
            select(MembershipEntryRow)
            .where(MembershipEntryRow.case_id == case_id)
            .order_by(MembershipEntryRow.seq)
        )
    )


def load_state(
    db: Session, case_id: str, extra_users: Sequence[str] = ()
) -> tuple[MembershipState, dict[str, IdentityRecord]]:
    """Replay the stored log; returns the state and the identities it was checked with."""
    rows = membership_entries(db, case_id)
    users = {r.author_id for r in rows} | {r.subject_id for r in rows} | set(extra_users)
    identities = identities_of(db, users)
    state = replay_membership([{"body": r.body, "sig": r.sig} for r in rows], identities)
    return state, identities
