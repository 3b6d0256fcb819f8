"""Routes of the audit log: checkpoint, log key, proofs, ranges, and entries for members and
owners.

Everything here needs a session except the log key, which a client pins before it logs in.
Entries of a case are shown to its members only; anyone else gets the 404 of a missing case.
A format-2 entry travels as its skeleton and body; the source address and nonce that open the
body's commitment are sent only to the event's actor (SPEC.md, "Audit leaf format 2").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from vault.api.deps import CurrentUser, DbSession, LogSignerDep
from vault.errors import InvalidRequest, NotFound
from vault.protocol.checkpoint import NoteError, open_checkpoint
from vault.protocol.encoding import b64e
from vault.protocol.ids import is_valid_id
from vault.services import auditlog
from vault.services.auditlog import LogSigner

router = APIRouter(prefix="/v1/log", tags=["audit log"])

_MAX_INDEX = 1 << 62
Index = Annotated[int, Query(ge=0, le=_MAX_INDEX)]


def checked_checkpoint(signer: LogSigner, text: str | None) -> str | None:
    """A checkpoint a client passes on (to co-counsel) must be one this log signed."""
    if text is None:
        return None
    try:
        open_checkpoint(text, signer.verifier)
    except NoteError as exc:
        raise InvalidRequest(f"checkpoint: {exc}") from exc
    return text


@router.get("/key")
def log_key(db: DbSession, signer: LogSignerDep) -> dict:
    return {
        "origin": signer.origin,
        "public_key": b64e(signer.public_key),
        "vkey": signer.verifier.vkey(),
        # Pinned beside the key: where a revocation scan may begin.
        "first_v2": auditlog.first_v2(db),
    }


@router.get("/checkpoint")
def checkpoint(db: DbSession, _user: CurrentUser, signer: LogSignerDep) -> dict:
    """The signed note travels as one JSON string so its exact text survives."""
    note = auditlog.current_checkpoint(db, signer)
    db.commit()
    return {"checkpoint": note}


@router.get("/proof/inclusion")
def inclusion(db: DbSession, _user: CurrentUser, index: Index, size: Index) -> dict:
    proof = auditlog.inclusion_proof(db, index=index, size=size)
    return {"index": index, "size": size, "proof": [b64e(p) for p in proof]}


@router.get("/proof/consistency")
def consistency(db: DbSession, _user: CurrentUser, first: Index, second: Index) -> dict:
    proof = auditlog.consistency_proof(db, first=first, second=second)
    return {"first": first, "second": second, "proof": [b64e(p) for p in proof]}


@router.get("/range")
def leaf_range(
    db: DbSession,
    _user: CurrentUser,
    start: Annotated[int, Query(alias="from", ge=0, le=_MAX_INDEX)],
    end: Annotated[int, Query(alias="to", ge=0, le=_MAX_INDEX)],
    size: Index,
    frontier: bool = False,
) -> dict:
    """Skeletons of [from, to) under a signed checkpoint of `size`, a page at a time."""
    page = auditlog.leaf_range(db, start=start, end=end, size=size, with_frontier=frontier)
    return {
        "from": page.start,
        "size": size,
        "skeletons": [b64e(s) for s in page.skeletons],
        "frontier": None if page.frontier is None else [b64e(h) for h in page.frontier],
        "next": page.next,
    }


def _entry_item(row, names: dict[str, str], opening: tuple[str, bytes] | None) -> dict:
    item = {
        "index": row.leaf_index,
        "entry": b64e(row.entry),
        "actor": names.get(row.actor_id) if row.actor_id else None,
    }
    if row.body is not None:
        item["body"] = b64e(row.body)
        item["source_opening"] = (
            None if opening is None else {"address": opening[0], "nonce": b64e(opening[1])}
        )
    return item


@router.get("/entries")
def entries(
    db: DbSession,
    user: CurrentUser,
    case_id: str | None = None,
    start: Index = 0,
    end: Annotated[int | None, Query(ge=0, le=_MAX_INDEX)] = None,
    limit: Annotated[int, Query(ge=1, le=auditlog.MAX_ENTRIES_PAGE)] = auditlog.MAX_ENTRIES_PAGE,
) -> dict:
    """Entries of a case the caller is a member of, or (no case_id) the caller's own events."""
    if case_id is not None:
        if not is_valid_id(case_id) or not auditlog.is_case_member(
            db, case_id=case_id, user_id=user.id
        ):
            raise NotFound("no such case")
        rows = auditlog.entries(db, case_id=case_id, start=start, end=end, limit=limit)
    else:
        rows = auditlog.entries(db, actor_id=user.id, start=start, end=end, limit=limit)
    names = auditlog.usernames(db, {r.actor_id for r in rows if r.actor_id})
    # Openings of the caller's own format-2 events only: never a fellow member's address.
    openings = auditlog.source_openings(
        db, [r.event_id for r in rows if r.body is not None and r.actor_id == user.id]
    )
    items = [_entry_item(r, names, openings.get(r.event_id)) for r in rows]
    full_page = len(rows) == limit
    return {"entries": items, "next": rows[-1].leaf_index + 1 if full_page else None}
