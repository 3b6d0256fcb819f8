"""A manifest or tombstone must be signed at the head of the case's membership log (SPEC 4.4).

A record signed at an older position is valid as history, but accepting it as new lets an
uploader act on a membership state that is no longer true: a file encrypted after a removal
under rights the removal took away, or by a client that has not seen the change. The check is
made twice: against the replayed log (for a precise answer), and again in the transaction that
publishes, by a conditional update of the case row, so a membership change that commits in
between is refused too; on PostgreSQL that update holds the row lock a membership append
needs, so the two are ordered, never interleaved.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from vault.db.models.cases import Case
from vault.errors import Conflict
from vault.protocol.membership import MembershipState


class StaleMembership(Conflict):
    code = "membership_stale"
    title = "The case's membership changed; reload it and sign again"


def require_head(state: MembershipState, seq: int, record: str) -> None:
    """Refuse a record that names a membership position other than the current head."""
    head = state.head.seq
    if seq != head:
        raise StaleMembership(
            f"the {record} was signed at membership position {seq}; the head is {head}"
        )


def lock_head(db: Session, case_id: str, seq: int, record: str) -> None:
    """In the publishing transaction: the head is still `seq`, and stays so until commit."""
    held = db.execute(
        update(Case)
        .where(Case.id == case_id, Case.membership_seq == seq)
        .values(membership_seq=seq)
    )
    if held.rowcount != 1:
        raise StaleMembership(f"the membership log changed while the {record} was checked")
