"""The revocation scan: before it encrypts under a case key generation, the client establishes
from the audit log, up to a fresh signed checkpoint, that no membership change of that case lies
beyond the membership log it replayed (SPEC.md, "Audit leaf format 2 and the revocation scan",
"The client" 1 and 3-6).

Why: a hostile server can serve an owner the membership log and grants as they were before a
revocation, and the owner's next upload would be wrapped under the old case key that the
removed member holds. The server cannot hide the revocation from the log: every membership
event is a leaf whose public skeleton carries the case's tag and the entry's hash, clients pin
the log, and its author checks that leaf (its receipt).

One scan position serves every case. The scan reads each leaf once, from `first_v2` on, checks
the run against the checkpoint's root (the frontier at its start, then the leaf hashes), and
keeps, for every case tag it met, the membership entry hashes named there. A case seen for the
first time costs nothing more, and a later scan reads only the leaves appended since. The
sightings are kept forever, so a change seen once must appear in the case's log before this
client encrypts anything for that case again.

State (CASEVAULT_HOME/revocation_scan.json): `first_v2`; `position`, the end of the leaves
scanned; `frontier`, the b64 hashes at `position`; `sightings`, {case tag: [[index, hash]]}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from client.api import LOG_KEY, LOG_RANGE, field
from client.auditlog import EVIDENCE_DIR, audit_failure
from client.crypto.errors import IntegrityError
from client.errors import AuditVerificationError, Unreachable
from client.keystore import Keystore, atomic_write_bytes
from client.session import Session
from vault.protocol import merkle
from vault.protocol.checkpoint import Checkpoint
from vault.protocol.encoding import EncodingError, b64d, b64e
from vault.protocol.logentry import LeafError, LegacyLeaf, case_tag, parse_entry_v1, parse_skeleton
from vault.protocol.membership import MembershipState


class _Case(Protocol):
    """What the scan reads of a loaded case (client.cases.CaseContext)."""

    case_id: str
    state: MembershipState


CaseT = TypeVar("CaseT", bound=_Case)
# A concurrent owner's change makes the client reload and scan again; changes that keep coming
# faster than that are refused rather than chased forever.
MAX_ROUNDS = 3


class HiddenMembershipChange(IntegrityError):
    """The log names a membership change of the case that the server's membership log lacks,
    or the scan could not show there is none: nothing is encrypted (exit 3)."""

    def __init__(self, message: str, evidence: Path) -> None:
        super().__init__(f"{message}; nothing was encrypted; evidence saved to {evidence}")
        self.evidence = evidence


class _Inconclusive(Exception):  # noqa: N818 - internal, always turned into the error above
    pass


@dataclass
class _ScanState:
    first_v2: int
    position: int
    frontier: list[bytes] | None
    sightings: dict[str, list[list[Any]]]

    def to_json(self) -> dict[str, Any]:
        return {"first_v2": self.first_v2, "position": self.position,
                "frontier": None if self.frontier is None else [b64e(h) for h in self.frontier],
                "sightings": self.sightings}

    @classmethod
    def from_json(cls, obj: Any) -> _ScanState:
        try:
            frontier = obj["frontier"]
            state = cls(int(obj["first_v2"]), int(obj["position"]),
                        None if frontier is None else [b64d(h) for h in frontier],
                        {str(t): [[int(i), str(h)] for i, h in rows]
                         for t, rows in obj["sightings"].items()})
        except (KeyError, TypeError, ValueError, AttributeError, EncodingError) as exc:
            raise _Inconclusive("the local scan state is damaged") from exc
        return state


class RevocationScan:
    """The scan over one Session; `check` is called with a loaded case before encrypting."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._range: tuple[int, int] | None = None
        self._checkpoint_text = "(none)"

    def check(self, ctx: CaseT, reload: Callable[[], CaseT]) -> CaseT:
        """The case as the client may encrypt for it: its log holds every membership change
        the audit log names, up to a fresh checkpoint. A change the first log lacked (a
        co-owner acting at the same moment) makes the client reload the log and use the new
        head; one the server's log still lacks is a refusal with evidence."""
        for _ in range(MAX_ROUNDS):
            sightings = self._scan()
            missing = _missing(ctx, sightings)
            if not missing:
                return ctx
            ctx = reload()
            still = _missing(ctx, sightings)
            if still:
                raise self._refuse(
                    f"the audit log names {len(still)} membership change(s) of case "
                    f"{ctx.case_id} that the server's membership log does not hold (a hidden "
                    "revocation or role change)", leaves=still)
        raise self._refuse(f"the membership of case {ctx.case_id} kept changing during the scan",
                           leaves=[])

    # ------------------------------------------------------------ scanning

    def _scan(self) -> dict[str, list[list[Any]]]:
        """Bring the scan up to a fresh verified checkpoint; the sightings by case tag."""
        log = self.session.audit_log()
        try:
            checkpoint = log.refresh()
            pinned = log.pinned()
        except AuditVerificationError as exc:
            raise audit_failure(exc, "checkpoint for the revocation scan") from exc
        self._checkpoint_text = pinned[1] if pinned else "(none)"
        try:
            state = self._advance(checkpoint)
        except _Inconclusive as exc:
            raise self._refuse(f"the revocation scan is inconclusive: {exc}", leaves=[]) from exc
        return state.sightings

    def _first_v2(self, kept: _ScanState | None, size: int) -> int:
        reply = self._ask(LOG_KEY, lambda: self.session.api.log_key())
        value = field(reply, "first_v2")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _Inconclusive("the server names no index where format 2 begins")
        if kept is not None and value != kept.first_v2:
            raise _Inconclusive(f"format 2 began at leaf {kept.first_v2}; the server now says "
                                f"{value}")
        if value > size:
            raise _Inconclusive(f"format 2 begins at leaf {value}, beyond the checkpoint")
        return value

    def _advance(self, checkpoint: Checkpoint) -> _ScanState:
        raw = self.session.keystore.load_scan_state()
        kept = None if raw is None else _ScanState.from_json(raw)
        size = checkpoint.size
        first_v2 = self._first_v2(kept, size)
        if kept is None:
            # First scan: from the last format-1 leaf, which must be one (SPEC client 1), so a
            # server cannot claim format 2 began later than it did and skip changes.
            start = max(first_v2 - 1, 0)
            state = _ScanState(first_v2, start, None, {})
        else:
            state = kept
        start = state.position
        self._range = (start, size)
        if size < start:
            raise _Inconclusive(f"the checkpoint ({size}) is behind the scan ({start})")
        frontier = state.frontier
        cursor = start
        while cursor < size or frontier is None:
            reply = self._ask(LOG_RANGE, lambda c=cursor, f=frontier: self.session.api.log_range(
                c, size, size, frontier=f is None))
            if field(reply, "from") != cursor:
                raise _Inconclusive(f"asked for leaves from {cursor}, got another range")
            if frontier is None:
                frontier = _hash_list(field(reply, "frontier"), "frontier")
            leaves = _leaf_list(field(reply, "skeletons"))
            if cursor < size and not leaves or len(leaves) > size - cursor:
                raise _Inconclusive(f"the server sent {len(leaves)} leaves from {cursor}")
            for offset, leaf in enumerate(leaves):
                index = cursor + offset
                tagged = _read_leaf(index, leaf, legacy=index == first_v2 - 1)
                if tagged is not None:
                    state.sightings.setdefault(tagged[0], []).append([index, tagged[1]])
            try:
                frontier = merkle.extend_frontier(frontier, cursor,
                                                  [merkle.leaf_hash(leaf) for leaf in leaves])
            except ValueError as exc:
                raise _Inconclusive(f"the frontier does not fit leaf {cursor}") from exc
            cursor += len(leaves)
        if not merkle.verify_range(frontier, size, [], size, checkpoint.root_hash):
            raise _Inconclusive(f"leaves [{start}, {size}) do not match the signed checkpoint")
        state.position, state.frontier = size, frontier
        # Saved only once the whole run matched the checkpoint: only that advances the scan.
        self.session.keystore.save_scan_state(state.to_json())
        return state

    def _ask(self, path: str, call: Callable[[], Any]) -> Any:
        """A refused or failed request is evidence too (SPEC server 3), a 401 included: it
        follows the checkpoint this session was just served, and a server that will not show
        its log looks exactly like one hiding a change."""
        try:
            return call()
        except Unreachable:
            self._evidence(f"the server became unreachable while serving {path}", [])
            raise
        except Exception as exc:  # noqa: BLE001 - any server failure makes the scan fail
            raise _Inconclusive(f"the server did not serve {path} ({type(exc).__name__}: "
                                f"{exc})") from exc

    # ------------------------------------------------------------ refusing

    def _refuse(self, problem: str, *, leaves: list[list[Any]]) -> HiddenMembershipChange:
        return HiddenMembershipChange(problem, self._evidence(problem, leaves))

    def _evidence(self, problem: str, leaves: list[list[Any]]) -> Path:
        scanned = "(none)" if self._range is None else f"[{self._range[0]}, {self._range[1]})"
        rows = [f"{index} {entry_hash}" for index, entry_hash in leaves] or ["(none)"]
        return save_evidence(self.session.keystore, "revocation-scan", problem, [
            ("checkpoint", self._checkpoint_text), ("range scanned", scanned),
            ("leaves concerned (index, membership entry hash)", "\n".join(rows))])


def save_evidence(keystore: Keystore, kind: str, problem: str,
                  sections: list[tuple[str, str]]) -> Path:
    """CASEVAULT_HOME/evidence/<kind>-<time>.txt, beside the audit log's evidence."""
    folder = keystore.ensure() / EVIDENCE_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{kind}-{stamp}.txt"
    lines = [f"problem: {problem}", f"recorded: {stamp}"]
    for title, text in sections:
        lines += ["", f"{title}:", text]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"), 0o600)
    return path


def _missing(ctx: _Case, sightings: dict[str, list[list[Any]]]) -> list[list[Any]]:
    """The leaves of the case's tag whose entry is not in the log replayed for `ctx`."""
    known = {entry.entry_hash for entry in ctx.state.entries}
    return [row for row in sightings.get(case_tag(ctx.case_id), []) if row[1] not in known]


def _read_leaf(index: int, leaf: bytes, *, legacy: bool) -> tuple[str, str] | None:
    """(case tag, entry hash) of a membership leaf, None for any other leaf."""
    try:
        if legacy:
            parse_entry_v1(leaf)
            return None
        skeleton = parse_skeleton(leaf)
    except LegacyLeaf as exc:
        raise _Inconclusive(f"leaf {index} is format 1 after format 2 began") from exc
    except LeafError as exc:
        what = "not format 1 (format 2 began earlier)" if legacy else f"malformed ({exc})"
        raise _Inconclusive(f"leaf {index} is {what}") from exc
    if skeleton.case_tag is None or skeleton.membership is None:
        return None
    return skeleton.case_tag, skeleton.membership


def _leaf_list(value: Any) -> list[bytes]:
    if not isinstance(value, list):
        raise _Inconclusive("the range reply holds no list of leaves")
    try:
        return [b64d(v) for v in value]
    except (EncodingError, TypeError) as exc:
        raise _Inconclusive("a leaf of the range is not base64url") from exc


def _hash_list(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _Inconclusive(f"the range reply holds no {what}")
    try:
        hashes = [b64d(v) for v in value]
    except (EncodingError, TypeError) as exc:
        raise _Inconclusive(f"the {what} is not base64url") from exc
    if any(len(h) != merkle.HASH_SIZE for h in hashes):
        raise _Inconclusive(f"the {what} holds a value that is not a hash")
    return hashes


__all__ = ["HiddenMembershipChange", "RevocationScan", "save_evidence"]
