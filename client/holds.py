"""Legal hold on the client (SPEC 4.2.1): an owner signs a `hold` or `release` entry into the
case's membership log, and every reader learns the hold from its OWN replay of that log.

The server's word on a hold (a listing field, a 409) is never what the client relies on: a
hold is shown, and a deletion refused, because the verified log says a hold stands.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from client import crypto
from client.cases import CaseContext, CaseOps, check_case_id, iso
from client.errors import CaseOnHold, VaultError
from client.session import Session
from vault.protocol.events import Action
from vault.protocol.membership import membership_entry_body
from vault.protocol.records import LABEL_MEMBERSHIP, MAX_HOLD_REASON_CHARS
from vault.protocol.text import is_clean_text


def hold_of(ctx: CaseContext) -> dict[str, Any] | None:
    """The hold standing at the head of the verified log: reason, who placed it, when."""
    hold = ctx.state.hold
    if hold is None:
        return None
    return {"reason": hold.reason, "placed_by": ctx.username(hold.author),
            "placed_at": iso(hold.time), "seq": hold.seq}


def describe(hold: dict[str, Any]) -> str:
    """One line for a person: what stands, why, who and when."""
    return (f"LEGAL HOLD since {hold['placed_at']} by {hold['placed_by']}: {hold['reason']} "
            "(nothing in this case can be deleted)")


def refuse_if_held(ctx: CaseContext) -> None:
    """A client MUST NOT sign a tombstone while a hold stands (SPEC 4.2.1)."""
    hold = hold_of(ctx)
    if hold is not None:
        raise CaseOnHold(
            f"the case is under a legal hold placed by {hold['placed_by']} at "
            f"{hold['placed_at']} ({hold['reason']}); nothing in it can be deleted until an "
            "owner releases the hold (casevault hold CASE_ID --release)")


def check_holds_kept(ctx: CaseContext, entries: list[dict[str, Any]]) -> None:
    """Refuse a verified audit trail in which a file was deleted while a hold stood.

    SPEC 4.2.1: a deletion's leaf between the leaf of a `hold` entry and that of its `release`
    proves the server ignored the hold. A hold leaf counts only when it carries, byte for byte,
    a `hold` entry of the replayed log, so a server cannot invent or move one.
    """
    def bodies(action: str) -> set[str]:
        return {e.signed["body"] for e in ctx.state.entries if e.action == action}

    holds, releases = bodies("hold"), bodies("release")
    held_at: int | None = None
    for e in entries:
        record = e["record"]
        signed = record.get("signed_record")
        body = signed.get("body") if isinstance(signed, dict) else None
        action = record.get("action")
        if action == Action.CASE_HOLD_PLACED and body in holds:
            held_at = e["index"]
        elif action == Action.CASE_HOLD_RELEASED and body in releases:
            held_at = None
        elif (action == Action.FILE_DELETED and held_at is not None
              and record.get("result", "success") == "success"):
            raise crypto.IntegrityError(
                f"audit log of case {ctx.case_id} (file {record.get('file_id')} was deleted at "
                f"index {e['index']} under the legal hold logged at index {held_at}: the "
                "server ignored the hold)")


class Holds:
    """Place, release and read legal holds, over a Session."""

    def __init__(self, session: Session, cases: CaseOps | None = None) -> None:
        self.session = session
        self.cases = cases or CaseOps(session)

    def status(self, case_id: str) -> dict[str, Any] | None:
        return hold_of(self.cases.load(case_id))

    def place(self, case_id: str, reason: str) -> dict[str, Any]:
        reason = unicodedata.normalize("NFC", reason.strip())
        if not is_clean_text(reason, max_chars=MAX_HOLD_REASON_CHARS, allow_empty=False):
            # SPEC 4.2.1 "clean text": what a terminal or a printed report shows is what was
            # signed (no control, bidi or line-breaking characters).
            raise VaultError(f"the reason of a hold must be 1 to {MAX_HOLD_REASON_CHARS} "
                             "characters of plain text on one line")
        ctx = self._owner_context(case_id, "place a legal hold")
        if ctx.state.hold is not None:
            raise VaultError(f"a legal hold already stands: {describe(hold_of(ctx) or {})}")
        self._append(ctx, "hold", Action.CASE_HOLD_PLACED, reason)
        return {"case_id": case_id, "hold": True, "reason": reason}

    def release(self, case_id: str) -> dict[str, Any]:
        ctx = self._owner_context(case_id, "release a legal hold")
        if ctx.state.hold is None:
            raise VaultError("no legal hold stands on this case")
        reason = ctx.state.hold.reason
        self._append(ctx, "release", Action.CASE_HOLD_RELEASED, None)
        return {"case_id": case_id, "hold": False, "reason": reason}

    def _owner_context(self, case_id: str, what: str) -> CaseContext:
        ctx = self.cases.load(check_case_id(case_id))
        if ctx.role() != "owner":
            raise VaultError(f"only an owner of the case can {what}")
        return ctx

    def _append(self, ctx: CaseContext, action: str, event: Action, reason: str | None) -> None:
        # Subject, key and role are the owner's own and the generation is unchanged: a hold is
        # about the case, not about a member (SPEC 4.2.1).
        identity = self.session.identity()
        me = ctx.state.members[identity.user_id]
        body = membership_entry_body(
            case_id=ctx.case_id, seq=ctx.state.next_seq, prev_hash=ctx.state.head_hash,
            action=action, subject=me.user_id, subject_fp=me.fingerprint, role="owner",
            author=me.user_id, time=max(self.session.now(), ctx.state.entries[-1].time),
            generation=ctx.generation, reason=reason)
        entry = identity.sign(LABEL_MEMBERSHIP, body)
        reply = self.session.api.append_membership(ctx.case_id, {"entry": entry, "grants": []})
        index = reply.get("log_index") if isinstance(reply, dict) else None
        # The receipt: our own signed entry is in the log as we made it.
        self.cases.receipt(index, expect={"action": event, "case_id": ctx.case_id},
                           detail={"subject": me.user_id, "seq": ctx.state.next_seq})
