"""Cases, the membership log and key grants (the membership check every case route uses is in
case_access).

The server replays the signed membership log (vault.protocol.membership) before it appends to it,
so a buggy or hostile client cannot corrupt a case for the others. It never sees a case key:
grants and key links are opaque sealed bytes that it only checks the signatures of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.db.base import utcnow
from vault.db.models import User
from vault.db.models.accounts import ACCOUNT_ACTIVE
from vault.db.models.cases import ROLE_OWNER, Case, CaseMember, KeyGrant, MembershipEntryRow
from vault.errors import Conflict, InvalidRequest
from vault.protocol.encoding import EncodingError, b64d, parse_canonical
from vault.protocol.events import MEMBERSHIP_EVENTS, Action
from vault.protocol.ids import is_valid_id
from vault.protocol.membership import (
    MembershipState,
    replay_membership,
    verify_grant,
    verify_membership_append,
)
from vault.protocol.records import IdentityRecord, RecordError
from vault.services.case_access import (
    InvalidRecord,
    check_opaque,
    identities_of,
    load_state,
    membership_entries,
    require_member,
    signed_text,
)
from vault.services.events import record_event


class CaseExists(Conflict):
    code = "case_exists"
    title = "A case with this id exists"


class MembershipConflict(Conflict):
    code = "membership_conflict"
    title = "The membership log changed; fetch it and sign again"


@dataclass(frozen=True)
class CaseView:
    case: Case
    role: str


@dataclass(frozen=True)
class CreatedCase:
    case: Case
    log_index: int  # the creation event's leaf: the creator's receipt


@dataclass(frozen=True)
class AppendedEntry:
    state: MembershipState
    log_index: int  # the membership event's leaf: the owner's receipt


def _grant_row(grant_signed: dict[str, str], grant, now: datetime) -> KeyGrant:
    return KeyGrant(
        case_id=grant.case_id,
        generation=grant.generation,
        member_id=grant.member,
        granter_id=grant.granter,
        body=grant_signed["body"],
        sig=grant_signed["sig"],
        created_at=now,
    )


def _entry_row(entry, now: datetime) -> MembershipEntryRow:
    return MembershipEntryRow(
        case_id=entry.case_id,
        seq=entry.seq,
        entry_hash=entry.entry_hash,
        action=entry.action,
        author_id=entry.author,
        subject_id=entry.subject,
        body=entry.signed["body"],
        sig=entry.signed["sig"],
        created_at=now,
    )


def _verify_grants(
    grants: Sequence[Any],
    state: MembershipState,
    identities: dict[str, IdentityRecord],
    *,
    granter: str,
    expected_members: set[str],
) -> list[tuple[dict[str, str], Any]]:
    """Grants for exactly `expected_members` at the current generation, signed by `granter`."""
    if not isinstance(grants, list):
        raise InvalidRequest("grants must be a list")
    verified = []
    for signed in grants:
        try:
            grant = verify_grant(signed, state, identities)
        except RecordError as exc:
            raise InvalidRecord(str(exc)) from exc
        if grant.generation != state.generation or grant.granter != granter:
            raise InvalidRecord("grants are for the current generation, by the entry's author")
        verified.append((grant.signed, grant))
    members = [g.member for _, g in verified]
    if len(members) != len(set(members)) or set(members) != expected_members:
        raise InvalidRecord("grants must cover exactly the members who need the new key")
    return verified


def create_case(
    db: Session,
    *,
    user: User,
    case_id: str,
    encrypted_info: str,
    entry: Any,
    grant: Any,
    source: str | None = None,
    now: datetime | None = None,
) -> CreatedCase:
    """Create a case with its genesis membership entry and the creator's first grant, at once."""
    now = now or utcnow()
    if not is_valid_id(case_id):
        raise InvalidRequest("case_id is 32 lowercase hex digits")
    check_opaque(encrypted_info, "encrypted_info")
    identities = identities_of(db, [user.id])
    try:
        state = replay_membership([entry], identities)
    except RecordError as exc:
        raise InvalidRecord(str(exc)) from exc
    genesis = state.entries[0]
    if genesis.case_id != case_id or genesis.author != user.id:
        raise InvalidRecord("the create entry must be signed by you for this case")
    ((grant_signed, first_grant),) = _verify_grants(
        [grant], state, identities, granter=user.id, expected_members={user.id}
    )
    if db.get(Case, case_id) is not None:
        raise CaseExists()
    case = Case(
        id=case_id,
        created_by=user.id,
        created_at=now,
        encrypted_info=encrypted_info,
        membership_seq=genesis.seq,
        membership_head=genesis.entry_hash,
        generation=state.generation,
    )
    db.add(case)
    db.flush()
    db.add(
        CaseMember(
            case_id=case_id,
            user_id=user.id,
            role=ROLE_OWNER,
            fingerprint=genesis.subject_fp,
            added_at=now,
        )
    )
    db.add(_entry_row(genesis, now))
    db.add(_grant_row(grant_signed, first_grant, now))
    common = {"actor_id": user.id, "case_id": case_id, "source": source, "now": now}
    created = record_event(
        db, action=Action.CASE_CREATED, signed_record=signed_text(genesis.signed), **common
    )
    record_event(
        db,
        action=Action.GRANT_ADDED,
        detail={"generation": 0, "member": user.id},
        signed_record=signed_text(grant_signed),
        **common,
    )
    _commit(db, CaseExists)
    return CreatedCase(case=case, log_index=created.log_index)


def _commit(db: Session, conflict: type[Conflict]) -> None:
    # A concurrent writer took the same primary key (case id, log position): nothing half-written.
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        raise conflict() from exc


def append_membership(
    db: Session,
    *,
    user: User,
    case_id: str,
    entry: Any,
    grants: Any,
    source: str | None = None,
    now: datetime | None = None,
    sharer_checkpoint: str | None = None,
) -> AppendedEntry:
    """Append one owner-signed entry (add / remove / role / hold / release) with the grants
    it needs (a hold or release needs none).

    `sharer_checkpoint`, the owner's latest verified log checkpoint, is logged in the event's
    detail so the added member can check it against their own view of the log.
    """
    now = now or utcnow()
    require_member(db, case_id, user.id, min_role=ROLE_OWNER)
    case = db.get(Case, case_id)
    assert case is not None  # a member row implies the case (foreign key)
    peeked = _peek(entry)
    subject_id = peeked.get("subject")
    extra = [subject_id] if is_valid_id(subject_id) else []
    state, identities = load_state(db, case_id, extra_users=extra)
    if peeked.get("action") == "add" and extra:
        target = db.get(User, subject_id)
        if target is None or target.status != ACCOUNT_ACTIVE:
            raise InvalidRecord("only an active account can be added")
    try:
        new_state = verify_membership_append(state, entry, identities)
    except RecordError as exc:
        if _is_stale(entry, state):
            raise MembershipConflict(str(exc)) from exc
        raise InvalidRecord(str(exc)) from exc
    e = new_state.entries[-1]
    if e.author != user.id:
        raise InvalidRecord("the entry must be signed by you")

    if e.action == "add":
        expected = {e.subject}
    elif e.action == "remove":
        expected = set(new_state.members)
    else:
        expected = set()
    verified = _verify_grants(
        grants, new_state, identities, granter=user.id, expected_members=expected
    )

    db.add(_entry_row(e, now))
    for signed, grant in verified:
        db.add(_grant_row(signed, grant, now))
    case.membership_seq = e.seq
    case.membership_head = e.entry_hash
    case.generation = new_state.generation
    if e.action == "add":
        db.add(
            CaseMember(
                case_id=case_id,
                user_id=e.subject,
                role=e.role,
                fingerprint=e.subject_fp,
                added_at=now,
            )
        )
    elif e.action in ("remove", "role"):
        row = db.get(CaseMember, (case_id, e.subject))
        assert row is not None  # the replay checked that the subject is a member
        if e.action == "remove":
            db.delete(row)
        else:
            row.role = e.role
    # A `hold` or `release` is about the case, not a member (SPEC 4.2.1): no member row and no
    # generation changes; the entry row and its audit event are the whole of it.

    common = {"actor_id": user.id, "case_id": case_id, "source": source, "now": now}
    appended = record_event(
        db,
        action=MEMBERSHIP_EVENTS[e.action],
        detail={
            "subject": e.subject,
            "role": e.role,
            "seq": e.seq,
            **({"sharer_checkpoint": sharer_checkpoint} if sharer_checkpoint else {}),
        },
        signed_record=signed_text(e.signed),
        **common,
    )
    if new_state.generation != state.generation:
        record_event(
            db,
            action=Action.GENERATION_ADDED,
            detail={"generation": new_state.generation, "seq": e.seq},
            **common,
        )
    for signed, grant in verified:
        record_event(
            db,
            action=Action.GRANT_ADDED,
            detail={"generation": grant.generation, "member": grant.member},
            signed_record=signed_text(signed),
            **common,
        )
    _commit(db, MembershipConflict)
    return AppendedEntry(state=new_state, log_index=appended.log_index)


def _peek(entry: Any) -> dict[str, Any]:
    """An entry body read before verification, only to pick which identities to load."""
    try:
        return parse_canonical(b64d(entry["body"]))
    except (EncodingError, TypeError, KeyError):
        return {}


def _is_stale(entry: Any, state: MembershipState) -> bool:
    """True when the entry was built on an older head (a concurrent change), not forged."""
    seq = _peek(entry).get("seq")
    return isinstance(seq, int) and seq < state.next_seq


def list_cases(db: Session, *, user: User) -> list[CaseView]:
    rows = db.execute(
        select(Case, CaseMember.role)
        .join(CaseMember, CaseMember.case_id == Case.id)
        .where(CaseMember.user_id == user.id)
        .order_by(Case.created_at, Case.id)
    )
    return [CaseView(case=case, role=role) for case, role in rows]


def get_case(
    db: Session, *, user: User, case_id: str
) -> tuple[CaseView, list[tuple[CaseMember, str]]]:
    """The case, the caller's role and the members with their usernames."""
    me = require_member(db, case_id, user.id)
    case = db.get(Case, case_id)
    assert case is not None
    members = db.execute(
        select(CaseMember, User.username)
        .join(User, User.id == CaseMember.user_id)
        .where(CaseMember.case_id == case_id)
        .order_by(User.username)
    )
    return CaseView(case=case, role=me.role), [(m, name) for m, name in members]


def membership_log(
    db: Session, *, user: User, case_id: str
) -> tuple[list[MembershipEntryRow], dict[str, str]]:
    """Every entry of the log and the usernames of everyone it names, for the client's replay."""
    require_member(db, case_id, user.id)
    rows = membership_entries(db, case_id)
    ids = {r.author_id for r in rows} | {r.subject_id for r in rows}
    names = dict(db.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
    return rows, names


def my_grants(db: Session, *, user: User, case_id: str) -> list[KeyGrant]:
    """Every generation the caller was granted (generation links travel in the log)."""
    require_member(db, case_id, user.id)
    return list(
        db.scalars(
            select(KeyGrant)
            .where(KeyGrant.case_id == case_id, KeyGrant.member_id == user.id)
            .order_by(KeyGrant.generation)
        )
    )
