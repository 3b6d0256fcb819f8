"""The client's side of the audit log: it believes no entry, checkpoint or proof it cannot verify.

State in the client's home folder:
- log_key.json     the log's public key and origin, pinned on first use;
- checkpoint.json  the last checkpoint verified; it only moves forward through a consistency
                   proof, so a rolled-back or forked log is caught on the next refresh;
- receipts.json    (index, leaf hash) of the user's own actions, re-proven on demand;
- shared_checkpoints.json  cases whose sharer's checkpoint was compared with ours;
- evidence/        what the server showed when verification failed (both checkpoints, proofs):
                   two validly signed inconsistent checkpoints prove a fork to anyone.

Entries from `first_v2` on are format 2 (SPEC.md, "Audit leaf format 2"): the leaf is a
skeleton, the server sends the body it names beside it, and the source address only for the
user's own events, as an opening of the body's commitment. A body that does not match its
proven skeleton, or an opening that does not open, is a hard error with evidence.

The transport is one function `get_json(path, params) -> object` (for example `Api.get`), so a
test can put a hostile server behind it; the paths are client.api's LOG_* endpoints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client.api import (
    LOG_CHECKPOINT,
    LOG_CONSISTENCY_PROOF,
    LOG_ENTRIES,
    LOG_INCLUSION_PROOF,
    LOG_KEY,
    field,
)
from client.errors import AuditVerificationError, IntegrityError, NotAuthenticated, Unreachable
from client.keystore import atomic_write_bytes
from client.logrows import RowRejected, parse_entry, read_row
from vault.protocol import merkle
from vault.protocol.checkpoint import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from vault.protocol.encoding import EncodingError, b64d, b64e
from vault.protocol.events import Action

GetJson = Callable[[str, dict[str, Any]], Any]

CHECKPOINT_FILE = "checkpoint.json"
LOG_KEY_FILE = "log_key.json"
RECEIPTS_FILE = "receipts.json"
SHARED_FILE = "shared_checkpoints.json"
EVIDENCE_DIR = "evidence"
_PAGE = 1000


class AuditLog:
    """The log verifier: pinned key and checkpoint, receipts, proofs and evidence."""

    def __init__(self, home: Path | str, get_json: GetJson) -> None:
        self.home = Path(home)
        self._get = get_json

    # --- local state -----------------------------------------------------------------------

    def _read(self, name: str) -> Any | None:
        path = self.home / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AuditVerificationError(f"local file {path} is unreadable") from exc

    def _write(self, name: str, obj: Any) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = json.dumps(obj, indent=2, sort_keys=True).encode("utf-8")
        atomic_write_bytes(self.home / name, data, 0o600)

    def _evidence(self, problem: str, **items: Any) -> Path:
        folder = self.home / EVIDENCE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"audit-{stamp}.txt"
        lines = [f"problem: {problem}", f"recorded: {stamp}"]
        pinned = self._read(CHECKPOINT_FILE)
        lines += ["", "pinned checkpoint:", (pinned or {}).get("checkpoint", "(none)")]
        for key, value in items.items():
            if isinstance(value, list):
                value = "\n".join(value)
            lines += ["", f"{key.replace('_', ' ')}:", str(value)]
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"), 0o600)
        return path

    def _fail(self, problem: str, **items: Any) -> AuditVerificationError:
        return AuditVerificationError(problem, self._evidence(problem, **items))

    def _fetch(self, path: str, params: dict[str, Any], what: str) -> Any:
        """Ask the server for something verification needs; a refusal is evidence too.

        A server that answers but will not prove what it signed looks exactly like one hiding
        a fork, so the refusal (any error reply, 401 included) is recorded like a failed proof
        and reported as a verification that could not complete. A server that cannot be
        reached at all is recorded too, but reported as unreachable: nothing is shown either
        way, and a crashed server should not read to a lawyer as a forged history. Only a 401
        to the checkpoint, the first request of a verification, is an ended session and
        passes through unchanged.
        """
        try:
            return self._get(path, params)
        except Exception as exc:  # noqa: BLE001 - any transport or server failure counts
            refused_login = isinstance(exc, NotAuthenticated) or isinstance(
                exc.__cause__, NotAuthenticated)
            # The checkpoint is asked for first: a 401 there is an ended session. Any later
            # request of a verification (entries, proofs) follows replies the same session
            # just got, so a 401 there is a refusal to prove, recorded like any other.
            if refused_login and path == LOG_CHECKPOINT:
                raise
            request = f"GET {path} {json.dumps(params, sort_keys=True)}"
            unreachable = next((e for e in (exc, exc.__cause__) if isinstance(e, Unreachable)),
                               None)
            if unreachable is not None:
                self._evidence(f"the server became unreachable while serving {what}",
                               request=request)
                raise unreachable from exc
            # A 401 here is the server's refusal, not the lawyer's session: say so, not
            # "session expired", which would send the lawyer to log in and forget it.
            reason = ("it refused with 401 although the session had just been accepted"
                      if refused_login else f"{type(exc).__name__}: {exc}")
            raise self._fail(
                f"verification could not complete: the server did not serve {what} ({reason})",
                request=request, reply=str(exc),
            ) from exc

    # --- the log key and the pinned checkpoint ---------------------------------------------

    def verifier(self) -> NoteVerifier:
        """The log key, pinned on first use; a different key later is a hard error."""
        pinned = self._read(LOG_KEY_FILE)
        if pinned is not None:
            return NoteVerifier(pinned["origin"], b64d(pinned["public_key"]))
        served = self._get(LOG_KEY, {})
        try:
            verifier = NoteVerifier(served["origin"], b64d(served["public_key"]))
        except (KeyError, TypeError, NoteError, EncodingError) as exc:
            raise AuditVerificationError("the server sent a malformed log key") from exc
        self._write(
            LOG_KEY_FILE, {"origin": verifier.name, "public_key": b64e(verifier.public_key)}
        )
        return verifier

    def pinned(self) -> tuple[Checkpoint, str] | None:
        state = self._read(CHECKPOINT_FILE)
        if state is None:
            return None
        text = state["checkpoint"]
        try:
            return open_checkpoint(text, self.verifier()), text
        except NoteError as exc:
            raise AuditVerificationError("the pinned checkpoint no longer verifies") from exc

    def _open(self, text: Any, what: str) -> Checkpoint:
        if not isinstance(text, str):
            raise self._fail(f"{what} is not a signed note", received=repr(text)[:2000])
        try:
            return open_checkpoint(text, self.verifier())
        except NoteError as exc:
            raise self._fail(
                f"{what} has a bad signature or format: {exc}", received=text
            ) from exc

    def _consistency(self, old: Checkpoint, new: Checkpoint, new_text: str,
                     **evidence: Any) -> None:
        reply = self._fetch(
            LOG_CONSISTENCY_PROOF,
            {"first": old.size, "second": new.size},
            f"a consistency proof from size {old.size} to {new.size}",
        )
        proof = _hashes(field(reply, "proof"))
        if proof is None or not merkle.verify_consistency(
            old.size, new.size, old.root_hash, new.root_hash, proof
        ):
            raise self._fail(
                f"the log at size {new.size} is not an extension of the pinned size {old.size}",
                received_checkpoint=new_text,
                consistency_proof=[b64e(p) for p in proof or []],
                **evidence,
            )

    def refresh(self) -> Checkpoint:
        """Fetch the latest checkpoint, prove it extends the pinned one, and pin it."""
        reply = self._fetch(LOG_CHECKPOINT, {}, "its latest checkpoint")
        text = field(reply, "checkpoint")
        new = self._open(text, "the server's checkpoint")
        current = self.pinned()
        if current is not None:
            old, _ = current
            if new.size < old.size:
                raise self._fail(
                    f"the log shrank from {old.size} to {new.size} entries (rollback)",
                    received_checkpoint=text,
                )
            if new.size == old.size:
                if new.root_hash != old.root_hash:
                    raise self._fail(
                        "two different logs signed at the same size (fork)",
                        received_checkpoint=text,
                    )
                return old
            self._consistency(old, new, text)
        self._write(CHECKPOINT_FILE, {"checkpoint": text})
        return new

    # --- entries and receipts --------------------------------------------------------------

    def _prove_inclusion(self, index: int, leaf: bytes, head: Checkpoint, what: str) -> None:
        reply = self._fetch(
            LOG_INCLUSION_PROOF,
            {"index": index, "size": head.size},
            f"an inclusion proof for index {index} at size {head.size}",
        )
        proof = _hashes(field(reply, "proof"))
        if proof is None or not merkle.verify_inclusion(
            leaf, index, head.size, proof, head.root_hash
        ):
            raise self._fail(
                f"{what} at index {index} is not in the signed log of size {head.size}",
                leaf_hash=b64e(leaf),
                inclusion_proof=[b64e(p) for p in proof or []],
            )

    def _receipts(self) -> list[dict[str, Any]]:
        return self._read(RECEIPTS_FILE) or []

    def add_receipt(self, index: int, entry: bytes,
                    record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Keep a receipt for one of the user's own actions after proving it is in the log.

        `record` is the event the leaf holds (`_read_row`); a format-1 entry is its own record.
        """
        head = self.refresh()
        if not 0 <= index < head.size:
            raise self._fail(f"own action at index {index} is beyond the signed log")
        if record is None:
            record = parse_entry(entry)
        leaf = merkle.leaf_hash(entry)
        self._prove_inclusion(index, leaf, head, "own action")
        receipt = {"index": index, "leaf_hash": b64e(leaf), "case_id": record.get("case_id"),
                   "action": record.get("action")}
        receipts = [r for r in self._receipts() if r["index"] != index] + [receipt]
        self._write(RECEIPTS_FILE, sorted(receipts, key=lambda r: r["index"]))
        return receipt

    def fetch_receipt(self, index: Any, *, expect: dict[str, Any] | None = None,
                      expect_detail: dict[str, Any] | None = None) -> dict:
        """Fetch the user's own entry at `index`, check it says what we did, keep a receipt.

        `expect` names fields of the entry (actor_id, action, case_id, file_id) and
        `expect_detail` fields of its detail; any difference is a hard error with evidence.
        """
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            action = (expect or {}).get("action", "the action")
            raise self._fail(f"the server gave no log index for own {action}",
                             received=repr(index)[:200])
        reply = self._fetch(
            LOG_ENTRIES, {"start": index, "end": index + 1}, f"own entry {index}"
        )
        rows = field(reply, "entries")
        if not rows or rows[0].get("index") != index:
            raise self._fail(f"the server did not return own action at index {index}")
        entry, record = self._read_row(rows[0], index, own=True)
        detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
        checks = [(k, record.get(k), v) for k, v in (expect or {}).items()]
        checks += [(f"detail.{k}", detail.get(k), v) for k, v in (expect_detail or {}).items()]
        for name, found, wanted in checks:
            if found != wanted:
                raise self._fail(f"the log entry at index {index} does not match {name}",
                                 entry=entry.decode("utf-8", "replace"))
        return self.add_receipt(index, entry, record)

    def find_own_entry(self, expect: dict[str, Any], expect_detail: dict[str, Any], *,
                       start: int = 0) -> int:
        """Index of the user's own entry matching `expect` (and its detail), searched from
        `start` in the server's list of the user's own events; for a receipt whose reply was
        lost. The caller still proves it with `fetch_receipt`."""
        cursor: int | None = start
        while cursor is not None:
            reply = self._fetch(LOG_ENTRIES, {"start": cursor, "limit": _PAGE},
                                "your own entries")
            rows = field(reply, "entries")
            if not isinstance(rows, list):
                raise self._fail("the server sent a malformed entry list")
            for row in rows:
                index = row.get("index") if isinstance(row, dict) else None
                if not isinstance(index, int) or index < cursor:
                    raise self._fail("the server sent an entry outside the requested range")
                _, record = self._read_row(row, index, own=True)
                detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
                if (all(record.get(k) == v for k, v in expect.items())
                        and all(detail.get(k) == v for k, v in expect_detail.items())):
                    return index
                cursor = index + 1
            nxt = reply.get("next")
            cursor = nxt if isinstance(nxt, int) and rows and nxt >= cursor else None
        raise self._fail(f"the server's log has no entry of your own {expect.get('action')}",
                         expected=json.dumps({**expect, "detail": expect_detail},
                                             sort_keys=True))

    def verify_all(self) -> dict[str, Any]:
        """Advance the pin through a consistency proof, then re-prove every receipt."""
        before = self.pinned()
        count = self.verify_receipts()
        head, _ = self.pinned()  # type: ignore[misc]
        return {"log_size": head.size, "previous_size": before[0].size if before else None,
                "root_hash": b64e(head.root_hash), "receipts": count}

    def verify_receipts(self) -> int:
        """Re-prove every receipt against a freshly verified checkpoint; returns the count."""
        head = self.refresh()
        receipts = self._receipts()
        for receipt in receipts:
            if receipt["index"] >= head.size:
                raise self._fail(f"own action at index {receipt['index']} left the log")
            self._prove_inclusion(receipt["index"], b64d(receipt["leaf_hash"]), head,
                                  "own action")
        return len(receipts)

    def case_entries(self, case_id: str) -> list[dict[str, Any]]:
        """Every entry of a case up to the verified checkpoint, each proven included.

        The user's own receipts for the case must all be there: a server that hides them
        from the listing is caught even though it could hide others' entries.
        """
        head = self.refresh()
        out: list[dict[str, Any]] = []
        for index, entry, record, actor in self._case_rows(case_id, head):
            self._prove_inclusion(index, merkle.leaf_hash(entry), head, "case entry")
            out.append({"index": index, "actor": actor, "record": record})
        listed = {e["index"] for e in out}
        for receipt in self._receipts():
            index = receipt["index"]
            if receipt.get("case_id") == case_id and index < head.size and index not in listed:
                raise self._fail(f"the server hid own action at index {index} from the case")
        return out

    def compare_checkpoint(self, other_text: str) -> Checkpoint:
        """Check a checkpoint from co-counsel against ours: both must be one history."""
        other = self._open(other_text, "the shared checkpoint")
        mine = self.refresh()
        if other.size > mine.size:
            raise self._fail(
                "the shared checkpoint is ahead of the server's latest (split view)",
                shared_checkpoint=other_text,
            )
        if other.size == mine.size:
            if other.root_hash != mine.root_hash:
                raise self._fail("the shared checkpoint and ours differ at one size (fork)",
                                 shared_checkpoint=other_text)
            return other
        # Both notes go into the evidence: together they prove the fork to anyone.
        self._consistency(other, mine, self.pinned()[1],  # type: ignore[index]
                          shared_checkpoint=other_text)
        return other

    def check_sharer_checkpoint(self, case_id: str, *, member_id: str, added_seq: int) -> str:
        """Compare the checkpoint logged with our addition to a case with our own view.

        The owner who shared the case sent their latest verified checkpoint with the
        membership entry, and the server logged it. Both checkpoints are signed by the log
        key: if they are not one history, the server showed us different logs (a fork). Done
        once per case; returns "consistent", "absent" (shared by an older client) or "done".
        """
        done = self._read(SHARED_FILE) or {}
        if case_id in done:
            return "done"
        head = self.refresh()
        found = None
        for index, entry, record, _actor in self._case_rows(case_id, head):
            detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
            if (record.get("action") == Action.MEMBER_ADDED
                    and detail.get("subject") == member_id and detail.get("seq") == added_seq):
                found = (index, entry, detail)
        if found is None:
            raise self._fail(f"the log of case {case_id} has no entry for your addition "
                             f"(membership entry {added_seq})")
        index, entry, detail = found
        self._prove_inclusion(index, merkle.leaf_hash(entry), head, "the entry adding you")
        shared = detail.get("sharer_checkpoint")
        outcome = "absent"
        if shared is not None:
            self.compare_checkpoint(shared)
            outcome = "consistent"
        done[case_id] = {"index": index, "outcome": outcome}
        self._write(SHARED_FILE, done)
        return outcome

    def _read_row(self, row: dict[str, Any], index: int, *,
                  own: bool = False) -> tuple[bytes, dict[str, Any]]:
        """(leaf bytes, the event as a record) of one listed entry (client.logrows), not yet
        proven included; anything it cannot accept is a hard error with evidence."""
        try:
            return read_row(row, index, own=own)
        except RowRejected as exc:
            raise self._fail(exc.problem, **exc.items) from exc

    def _case_rows(self, case_id: str, head: Checkpoint):
        """(index, entry, record, actor name) of a case's entries below the head, unproven."""
        start: int | None = 0
        while start is not None:
            reply = self._fetch(
                LOG_ENTRIES,
                {"case_id": case_id, "start": start, "end": head.size, "limit": _PAGE},
                f"the entries of case {case_id}",
            )
            rows = field(reply, "entries")
            if not isinstance(rows, list):
                raise self._fail("the server sent a malformed entry list")
            for row in rows:
                index = row.get("index") if isinstance(row, dict) else None
                if not isinstance(index, int) or not start <= index < head.size:
                    raise self._fail("the server sent an entry outside the requested range")
                entry, record = self._read_row(row, index)
                if record.get("case_id") != case_id:
                    raise self._fail(f"entry {index} belongs to another case")
                yield index, entry, record, row.get("actor")
                start = index + 1
            nxt = reply.get("next")
            start = nxt if isinstance(nxt, int) and nxt < head.size and rows else None


def audit_failure(exc: AuditVerificationError, what: str) -> IntegrityError:
    """One verification error naming the problem and where its evidence was saved."""
    where = f"; evidence saved to {exc.evidence}" if exc.evidence else ""
    return IntegrityError(f"audit log {what} ({exc.problem}{where})")


def _hashes(values: Any) -> list[bytes] | None:
    if not isinstance(values, list):
        return None
    try:
        out = [b64d(v) for v in values]
    except EncodingError:
        return None
    return out if all(len(h) == merkle.HASH_SIZE for h in out) else None


__all__ = ["AuditLog", "AuditVerificationError", "audit_failure"]
