"""A case's verified audit trail as the lawyer reads it: names resolved on the client, each
actor's trust state, and the legal holds checked against the deletions the log shows.

It builds on client.cases (the verified case), client.holds and client.custody (file names),
so it sits beside them rather than inside CaseOps, keeping the operation modules acyclic.
"""

from __future__ import annotations

from typing import Any

from client.auditlog import audit_failure
from client.cases import CaseContext, CaseOps, iso
from client.custody import file_paths
from client.errors import AuditVerificationError
from client.holds import check_holds_kept
from client.session import Session
from client.trust import UNVERIFIED, check_username


class CaseAudit:
    """Read a case's audit trail over a Session."""

    def __init__(self, session: Session, cases: CaseOps | None = None) -> None:
        self.session = session
        self.cases = cases or CaseOps(session)

    def audit(self, case_id: str, *, with_paths: bool = False) -> list[dict[str, Any]]:
        """The case's verified audit entries. `with_paths` adds each file's folder path and
        name (`target_path`), decrypted here; it lists the case's files, which the server
        logs as a listing (T30), so a caller that only reads the log leaves it off."""
        ctx = self.cases.load(case_id)
        try:
            entries = self.session.audit_log().case_entries(case_id)
        except AuditVerificationError as exc:
            raise audit_failure(exc, f"of case {case_id}") from exc
        check_holds_kept(ctx, entries)
        # Names are decrypted here, never sent by the server; only for files the log names.
        paths = file_paths(self.session, ctx) if with_paths and any(
            isinstance(e["record"].get("file_id"), str) for e in entries) else {}
        out = []
        states: dict[str, str] = {}  # per actor: the pins are read once, not once per entry
        for e in entries:
            record = e["record"]
            actor = e.get("actor")
            actor_id = record.get("actor_id") or record.get("actor")
            trust = None
            if isinstance(actor_id, str) and actor_id in ctx.identities:
                actor = ctx.identities[actor_id].username
                if actor_id not in states:
                    states[actor_id] = self.session.trust.trust_state(actor_id, ctx.me)
                trust = states[actor_id]
            elif actor is not None:
                # A name only the server vouches for: it must at least be one it could hold.
                check_username(actor, f"audit entry {e['index']}")
                trust = UNVERIFIED
            out.append({"index": e["index"], "time": _time_of(record),
                        "actor": actor, "action": record.get("action"),
                        "target": _target_of(record, ctx), "actor_trust": trust,
                        "target_path": paths.get(record.get("file_id"))})
        return out


def _time_of(record: dict[str, Any]) -> str | None:
    value = record.get("time")
    if isinstance(value, int):
        return iso(value)
    return value if isinstance(value, str) else None


def _target_of(record: dict[str, Any], ctx: CaseContext) -> str | None:
    # The most specific target first: a file, then the member an event is about, the case last.
    detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
    if isinstance(record.get("file_id"), str):
        return record["file_id"]
    for key in ("subject", "member"):
        if isinstance(detail.get(key), str):
            return ctx.username(detail[key])
    value = record.get("case_id")
    return value if isinstance(value, str) else None


