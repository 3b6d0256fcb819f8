"""Delete a file: a tombstone signed by the deleter, then the deletion's own log entry proven."""

from __future__ import annotations

from typing import Any

from client.api import field
from client.cases import CaseContext, CaseOps
from client.errors import MembershipStale, VaultError
from client.files.listing import CaseFiles
from client.holds import refuse_if_held
from client.session import Session
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id
from vault.protocol.records import LABEL_TOMBSTONE, tombstone_body


class Deletions:
    """Delete files of a case, over a Session."""

    def __init__(self, session: Session, cases: CaseOps | None = None) -> None:
        self.session = session
        self.cases = cases or CaseOps(session)
        self.files = CaseFiles(session, self.cases)

    def _send_tombstone(self, ctx: CaseContext, file_id: str) -> dict[str, Any]:
        identity = self.session.identity()
        body = tombstone_body(case_id=ctx.case_id, file_id=file_id,
                              membership_seq=ctx.state.head.seq, deleter=identity.user_id,
                              time=self.session.now())
        return self.session.api.delete_file(ctx.case_id, file_id,
                                            identity.sign(LABEL_TOMBSTONE, body))

    def delete(self, case_id: str, file_id: str) -> None:
        if not is_valid_id(file_id):
            raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
        ctx = self.cases.load(case_id)
        refuse_if_held(ctx)  # from our own replay of the log, before anything is signed
        if not ctx.state.may_upload(ctx.me):
            raise VaultError("viewers cannot delete files")
        if file_id not in self.files.latest(ctx):
            raise VaultError(f"no file {file_id} in this case")
        try:
            reply = self._send_tombstone(ctx, file_id)
        except MembershipStale:
            # Another owner changed the membership since the load: reload and sign once more.
            ctx = self.cases.load(case_id)
            if not ctx.state.may_upload(ctx.me):
                raise VaultError("your role in this case no longer allows deleting") from None
            reply = self._send_tombstone(ctx, file_id)
        self.files.record_seen(ctx, {file_id: (0, True)})
        self.cases.receipt(field(reply, "log_index"),
                           expect={"action": Action.FILE_DELETED, "case_id": case_id,
                                   "file_id": file_id})
