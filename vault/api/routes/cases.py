"""Routes: cases, the membership log and key grants. Thin: parse, call the service, serialise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from vault.api.deps import ClientAddress, ClockDep, CurrentUser, DbSession, LogSignerDep
from vault.api.routes.log import checked_checkpoint
from vault.db.models.cases import Case, KeyGrant
from vault.services import cases

router = APIRouter(prefix="/v1/cases", tags=["cases"])

MAX_CHECKPOINT_CHARS = 4096


class CreateCase(BaseModel):
    case_id: str
    encrypted_info: str
    entry: dict[str, Any]
    grant: dict[str, Any]


class CaseOut(BaseModel):
    case_id: str
    role: str
    encrypted_info: str
    generation: int
    membership_seq: int
    membership_head: str
    created_at: datetime


class MemberOut(BaseModel):
    user_id: str
    username: str
    role: str
    fingerprint: str


class CreatedCase(CaseOut):
    # The leaf of the creation event in the audit log: the creator's receipt.
    log_index: int | None = None


class CaseDetail(CaseOut):
    members: list[MemberOut]


class CaseList(BaseModel):
    cases: list[CaseOut]


class AppendEntry(BaseModel):
    entry: dict[str, Any]
    grants: list[dict[str, Any]] = Field(default_factory=list)
    # The owner's latest verified audit-log checkpoint, logged with the entry so the new
    # member can check that both saw one history (unsigned here: the note is signed itself).
    checkpoint: str | None = Field(default=None, max_length=MAX_CHECKPOINT_CHARS)


class AppendResult(BaseModel):
    seq: int
    generation: int
    # The leaf of the membership event in the audit log: the owner's receipt.
    log_index: int | None = None


class MembershipLog(BaseModel):
    entries: list[dict[str, str]]
    usernames: dict[str, str]


class GrantList(BaseModel):
    grants: list[dict[str, str]]


def _case_out(case: Case, role: str) -> CaseOut:
    return CaseOut(
        case_id=case.id,
        role=role,
        encrypted_info=case.encrypted_info,
        generation=case.generation,
        membership_seq=case.membership_seq,
        membership_head=case.membership_head,
        created_at=case.created_at,
    )


def _grant_out(grant: KeyGrant) -> dict[str, str]:
    return {"body": grant.body, "sig": grant.sig}


@router.post("", status_code=status.HTTP_201_CREATED)
def create_case(
    body: CreateCase, user: CurrentUser, db: DbSession, clock: ClockDep, address: ClientAddress
) -> CreatedCase:
    created = cases.create_case(
        db,
        user=user,
        case_id=body.case_id,
        encrypted_info=body.encrypted_info,
        entry=body.entry,
        grant=body.grant,
        source=address,
        now=clock(),
    )
    return CreatedCase(
        **_case_out(created.case, "owner").model_dump(), log_index=created.log_index
    )


@router.get("")
def list_cases(user: CurrentUser, db: DbSession) -> CaseList:
    return CaseList(cases=[_case_out(v.case, v.role) for v in cases.list_cases(db, user=user)])


@router.get("/{case_id}")
def get_case(case_id: str, user: CurrentUser, db: DbSession) -> CaseDetail:
    view, members = cases.get_case(db, user=user, case_id=case_id)
    return CaseDetail(
        **_case_out(view.case, view.role).model_dump(),
        members=[
            MemberOut(user_id=m.user_id, username=name, role=m.role, fingerprint=m.fingerprint)
            for m, name in members
        ],
    )


@router.get("/{case_id}/membership")
def get_membership(case_id: str, user: CurrentUser, db: DbSession) -> MembershipLog:
    rows, names = cases.membership_log(db, user=user, case_id=case_id)
    return MembershipLog(entries=[{"body": r.body, "sig": r.sig} for r in rows], usernames=names)


@router.post("/{case_id}/membership", status_code=status.HTTP_201_CREATED)
def append_membership(
    case_id: str,
    body: AppendEntry,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    address: ClientAddress,
    signer: LogSignerDep,
) -> AppendResult:
    appended = cases.append_membership(
        db,
        user=user,
        case_id=case_id,
        entry=body.entry,
        grants=body.grants,
        source=address,
        now=clock(),
        sharer_checkpoint=checked_checkpoint(signer, body.checkpoint),
    )
    return AppendResult(
        seq=appended.state.head.seq,
        generation=appended.state.generation,
        log_index=appended.log_index,
    )


@router.get("/{case_id}/grants")
def my_grants(case_id: str, user: CurrentUser, db: DbSession) -> GrantList:
    return GrantList(
        grants=[_grant_out(g) for g in cases.my_grants(db, user=user, case_id=case_id)]
    )
