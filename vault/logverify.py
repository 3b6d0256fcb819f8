"""`casevault-server verify-log`: recompute the audit log from the stored events and compare.

Every event must be exactly one leaf whose entry is what the event says now (format 1 before
`first_v2`, format 2 from it on: skeleton and body rebuilt from the row and its nonce, and the
stored body compared byte for byte); every stored hash
(leaf, perfect subtree, head) must be what the entries give; every signed checkpoint must carry
the log key's valid signature over the recomputed root at its size. Anything else is reported:
an edited, deleted, added or reordered event row cannot pass.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.config import Settings
from vault.db.engine import make_engine
from vault.db.models.log import LOG_STATE_ID, LogCheckpoint, LogLeaf, LogNode, LogState
from vault.protocol import merkle
from vault.protocol.checkpoint import NoteError, open_checkpoint
from vault.services.auditlog import (
    AUDIT_EVENTS,
    LOG_KEY_FILE,
    LogSigner,
    entry_for_event,
    leaf_for_event,
    select_event_rows,
)
from vault.services.auditlog.base import LogInconsistent
from vault.services.auditlog.entries import AUDIT_EVENTS_2
from vault.services.auditlog.ranges import first_v2 as read_first_v2

_BATCH = 5000
_MAX_REPORTED = 50


@dataclass
class LogReport:
    size: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    @property
    def ok(self) -> bool:
        return not self.problems


def _batches(conn: Connection, query: sa.Select, key) -> Iterator[list[sa.Row]]:
    """Stream a large table in key order, a batch at a time, never all in memory."""
    last = None
    while True:
        q = query if last is None else query.where(key > last)
        rows = conn.execute(q.order_by(key).limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key.key)


def _leaf_problem(leaf: sa.Row, event: sa.Row, format_2: bool) -> str | None:
    """Why a leaf is not what its event row says now, or None."""
    if not format_2:
        if leaf.body is not None or entry_for_event(event) != leaf.entry:
            return "was edited or moved"
        return None
    if event.source is not None and event.source_nonce is None:
        return "lost the nonce of its source commitment"
    try:
        skeleton, body = leaf_for_event(event)
    except ValueError:
        return "no longer makes a valid format-2 leaf"
    if skeleton != leaf.entry or body != leaf.body:
        return "was edited or moved"
    return None


def verify_log(conn: Connection, signer: LogSigner) -> LogReport:
    report = LogReport()
    events_query = select_event_rows(with_nonce=True)
    try:
        first_v2 = read_first_v2(conn)
    except LogInconsistent as exc:
        report.problem(str(exc))
        return report
    leaf_event_ids: set[int] = set()
    checkpoints = {r.tree_size: r for r in conn.execute(sa.select(LogCheckpoint)).all()}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    nodes = _NodeStreams(conn)
    frontier: list[bytes] = []
    size = 0
    for batch in _batches(conn, sa.select(LogLeaf), LogLeaf.leaf_index):
        # The events a batch of leaves names, fetched in one query rather than one per leaf.
        wanted = [leaf.event_id for leaf in batch]
        in_batch = events_query.where(AUDIT_EVENTS_2.c.id.in_(wanted))
        events = {e.id: e for e in conn.execute(in_batch)}
        for leaf in batch:
            if leaf.leaf_index != size:
                report.problem(f"leaf {size} is missing (next stored leaf is {leaf.leaf_index})")
                break
            event = events.get(leaf.event_id)
            if event is None:
                report.problem(f"leaf {size}: event {leaf.event_id} was deleted")
            elif (problem := _leaf_problem(leaf, event, size >= first_v2)) is not None:
                report.problem(f"leaf {size}: event {leaf.event_id} {problem}")
            if leaf.event_id in leaf_event_ids:
                report.problem(f"leaf {size}: event {leaf.event_id} is logged twice")
            leaf_event_ids.add(leaf.event_id)
            lh = merkle.leaf_hash(leaf.entry)
            if leaf.leaf_hash != lh:
                report.problem(f"leaf {size}: stored leaf hash does not match its entry")
            frontier, completed = merkle.append_to_frontier(frontier, size, lh)
            for level, index, h in completed:
                nodes.check(report, level, index, h)
            size += 1
            if size in checkpoints:
                roots[size] = merkle.root_from_frontier(frontier)
            if len(report.problems) >= _MAX_REPORTED:
                report.problem("too many problems; stopped")
                return report
        else:
            continue
        break
    report.size = size

    count = sa.select(sa.func.count()).select_from(AUDIT_EVENTS)
    total_events = conn.execute(count).scalar_one()
    unlogged = total_events - len(_existing_ids(conn, leaf_event_ids))
    if unlogged:
        report.problem(f"{unlogged} event row(s) are not in the log (inserted behind its back)")
    node_count = conn.execute(sa.select(sa.func.count()).select_from(LogNode)).scalar_one()
    expected_nodes = sum(size >> level for level in range(1, size.bit_length() + 1))
    if node_count != expected_nodes:
        report.problem(f"{node_count} stored nodes where the tree has {expected_nodes}")
    state = conn.execute(sa.select(LogState).where(LogState.id == LOG_STATE_ID)).first()
    if state is None or state.size != size or state.frontier != b"".join(frontier):
        report.problem("the log head does not match the recomputed tree")

    for tree_size, row in sorted(checkpoints.items()):
        report.checkpoints += 1
        try:
            opened = open_checkpoint(row.note, signer.verifier)
        except NoteError as exc:
            report.problem(f"checkpoint {tree_size}: {exc}")
            continue
        if opened.size != tree_size or opened.root_hash != row.root_hash:
            report.problem(f"checkpoint {tree_size}: stored fields differ from the signed note")
        if tree_size not in roots:
            report.problem(f"checkpoint {tree_size} is beyond the {size} entries of the log")
        elif roots[tree_size] != opened.root_hash:
            report.problem(f"checkpoint {tree_size}: signed root differs from the recomputed one")
    return report


class _NodeStreams:
    """The stored nodes of each level, read in index order a batch at a time.

    Appending leaves in order completes the nodes of every level in index order, so one
    ordered stream per level (about log2 n of them) checks every node with no query per node.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._streams: dict[int, Iterator[sa.Row]] = {}
        self._ahead: dict[int, sa.Row | None] = {}

    def _stream(self, level: int) -> Iterator[sa.Row]:
        query = sa.select(LogNode.index, LogNode.hash).where(LogNode.level == level)
        for batch in _batches(self._conn, query, LogNode.index):
            yield from batch

    def _peek(self, level: int) -> sa.Row | None:
        if level not in self._ahead:
            stream = self._streams.setdefault(level, self._stream(level))
            self._ahead[level] = next(stream, None)
        return self._ahead[level]

    def check(self, report: LogReport, level: int, index: int, expected: bytes) -> None:
        row = self._peek(level)
        # Rows below the index the entries reach are nodes no entry produces: skip them (the
        # node count check reports the surplus); a row beyond it means this node is missing.
        while row is not None and row.index < index:
            del self._ahead[level]
            row = self._peek(level)
        if row is None or row.index != index:
            report.problem(f"stored node ({level}, {index}) does not match the entries")
            return
        del self._ahead[level]
        if row.hash != expected:
            report.problem(f"stored node ({level}, {index}) does not match the entries")


def _existing_ids(conn: Connection, ids: set[int]) -> set[int]:
    found: set[int] = set()
    ordered = sorted(ids)
    for i in range(0, len(ordered), _BATCH):
        chunk = ordered[i : i + _BATCH]
        found.update(r[0] for r in conn.execute(sa.select(AUDIT_EVENTS.c.id).where(
            AUDIT_EVENTS.c.id.in_(chunk))))
    return found


def run_verify_log(settings: Settings) -> int:
    """CLI entry: print a summary, one line per problem, and exit non-zero on any problem."""
    key_file = settings.data_dir / LOG_KEY_FILE
    if not key_file.exists():
        print(f"casevault-server: no log key at {key_file}", file=sys.stderr)
        return 1
    signer = LogSigner.load_or_create(key_file)
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            report = verify_log(conn, signer)
    finally:
        engine.dispose()
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if report.ok:
        print(f"audit log OK: {report.size} entries, {report.checkpoints} signed checkpoint(s)")
        return 0
    print(f"audit log FAILED verification: {len(report.problems)} problem(s)", file=sys.stderr)
    return 1
