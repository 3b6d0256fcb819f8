"""The server side of the Merkle audit log: appends, signed checkpoints, proofs and entries.

Every audit event becomes one leaf, appended in the same transaction as the event row, so a
crash leaves neither or both. Appends lock the single `log_state` row (FOR UPDATE on
PostgreSQL; on SQLite the write lock taken by the first write), extend the compact range and
store the perfect subtrees that the new leaf completes: O(log n) work, never a full recompute.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.signing
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from vault.db.models_log import LOG_STATE_ID, LogCheckpoint, LogLeaf, LogNode, LogState
from vault.errors import InvalidRequest, NotFound, ServiceUnavailable
from vault.protocol import merkle
from vault.protocol.checkpoint import Checkpoint, NoteVerifier, sign_checkpoint
from vault.protocol.encoding import EncodingError, canonical_json, parse_canonical

ENTRY_VERSION = "cv1/audit-entry"
LOG_KEY_FILE = "log.key"
ORIGIN_PREFIX = "casevault.log/"
MAX_ENTRIES_PAGE = 1000
_SEED_SIZE = 32

DbLike = Session | Connection


class LogInconsistent(ServiceUnavailable):
    code = "log_inconsistent"
    title = "The audit log failed its own consistency check"


# --- entries -------------------------------------------------------------------------------


def _embed(text: str | None) -> Any:
    """Stored canonical JSON travels as an object; anything else as the exact text."""
    if text is None:
        return None
    try:
        return parse_canonical(text.encode("utf-8"))
    except EncodingError:
        return text


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_for_event(event: Any) -> bytes:
    """The exact bytes of the leaf for an audit_events row (ORM object or Core row)."""
    record = {
        "v": ENTRY_VERSION,
        "event_id": int(event.id),
        "time": format_time(event.time),
        "action": event.action,
        "result": event.result,
        "actor_id": event.actor_id,
        "case_id": event.case_id,
        "file_id": event.file_id,
        "source": event.source,
        "detail": _embed(event.detail),
        # The client's own signature travels in the leaf: the server cannot invent the action.
        "signed_record": _embed(event.signed_record),
    }
    return canonical_json(record)


# --- appends -------------------------------------------------------------------------------


def _dialect(db: DbLike) -> str:
    bind = db.get_bind() if isinstance(db, Session) else db
    return bind.dialect.name


def _split_frontier(blob: bytes) -> list[bytes]:
    return [blob[i : i + merkle.HASH_SIZE] for i in range(0, len(blob), merkle.HASH_SIZE)]


_STATE = LogState.__table__
_LEAVES = LogLeaf.__table__
_NODES = LogNode.__table__


# Built once: constructing statements per append cost more than executing them.
_HEAD_CACHE = "casevault.log_head"
_SELECT_HEAD_FOR_UPDATE = (
    sa.select(_STATE.c.size, _STATE.c.frontier)
    .where(_STATE.c.id == LOG_STATE_ID)
    .with_for_update()
)
# A no-op write takes SQLite's single write lock before the head is read, in one step.
_CLAIM_HEAD_SQLITE = (
    sa.update(_STATE)
    .where(_STATE.c.id == LOG_STATE_ID)
    .values(size=_STATE.c.size)
    .returning(_STATE.c.size, _STATE.c.frontier)
)
_MOVE_HEAD_IF = (
    sa.update(_STATE)
    .where(
        _STATE.c.id == LOG_STATE_ID,
        _STATE.c.size == sa.bindparam("old_size"),
        _STATE.c.frontier == sa.bindparam("old_frontier"),
    )
    .values(size=sa.bindparam("new_size"), frontier=sa.bindparam("new_frontier"))
)
_INSERT_LEAVES = sa.insert(_LEAVES)
_INSERT_NODES = sa.insert(_NODES)


def _connection(db: DbLike) -> Connection:
    # Core statements on the session's own connection (same transaction), without the ORM's
    # per-statement autoflush and execution bookkeeping.
    return db.connection() if isinstance(db, Session) else db


def _lock_state(conn: Connection) -> tuple[int, list[bytes]]:
    """Read the log head under the lock that serialises appends across processes."""
    if conn.dialect.name == "postgresql":
        row = conn.execute(_SELECT_HEAD_FOR_UPDATE).one_or_none()
    else:
        row = conn.execute(_CLAIM_HEAD_SQLITE).one_or_none()
    if row is None:
        raise LogInconsistent("the log head row is missing")
    frontier = _split_frontier(row.frontier)
    if len(frontier) != bin(row.size).count("1"):
        raise LogInconsistent("the log head is corrupt")
    return row.size, frontier


@dataclass(frozen=True)
class PendingLeaf:
    entry: bytes
    event_id: int
    case_id: str | None
    actor_id: str | None


def _extend(size: int, frontier: list[bytes], leaves: Sequence[PendingLeaf]):
    leaf_rows, node_rows = [], []
    for leaf in leaves:
        lh = merkle.leaf_hash(leaf.entry)
        frontier, completed = merkle.append_to_frontier(frontier, size, lh)
        leaf_rows.append(
            {
                "leaf_index": size,
                "event_id": leaf.event_id,
                "entry": leaf.entry,
                "leaf_hash": lh,
                "case_id": leaf.case_id,
                "actor_id": leaf.actor_id,
            }
        )
        node_rows.extend({"level": lv, "index": ix, "hash": h} for lv, ix, h in completed)
        size += 1
    return size, frontier, leaf_rows, node_rows


def append_leaves(db: DbLike, leaves: Sequence[PendingLeaf]) -> list[int]:
    """Append leaves in order inside the caller's transaction; returns their indices.

    Each pooled connection remembers the head it last wrote. The append first tries to move
    the head from that remembered state with one conditional UPDATE, which takes the same
    lock as reading it (the row lock on PostgreSQL, the write lock on SQLite). The condition
    names the whole head (size and compact range, a hash of every entry), so it only matches
    if no other process appended meanwhile and no rolled-back transaction is remembered;
    otherwise the head is read under the lock and the append proceeds as before. One
    statement saved per append, and nothing is trusted that the database did not confirm.
    """
    if not leaves:
        return []
    conn = _connection(db)
    first = None
    cached = conn.info.get(_HEAD_CACHE)
    if cached is not None:
        size, frontier = cached
        new_size, new_frontier, leaf_rows, node_rows = _extend(size, list(frontier), leaves)
        moved = conn.execute(
            _MOVE_HEAD_IF,
            {
                "old_size": size,
                "old_frontier": b"".join(frontier),
                "new_size": new_size,
                "new_frontier": b"".join(new_frontier),
            },
        )
        if moved.rowcount == 1:
            first = size
    if first is None:
        conn.info.pop(_HEAD_CACHE, None)
        size, frontier = _lock_state(conn)
        new_size, new_frontier, leaf_rows, node_rows = _extend(size, frontier, leaves)
        conn.execute(
            _MOVE_HEAD_IF,
            {
                "old_size": size,
                "old_frontier": b"".join(frontier),
                "new_size": new_size,
                "new_frontier": b"".join(new_frontier),
            },
        )
        first = size
    conn.execute(_INSERT_LEAVES, leaf_rows)
    if node_rows:
        conn.execute(_INSERT_NODES, node_rows)
    conn.info[_HEAD_CACHE] = (new_size, tuple(new_frontier))
    return list(range(first, new_size))


_RECORDED = "casevault.log_indices"


def append_event(db: DbLike, event: Any) -> int:
    """Make a flushed audit event a leaf of the log; returns its leaf index."""
    leaf = PendingLeaf(entry_for_event(event), int(event.id), event.case_id, event.actor_id)
    index = append_leaves(db, [leaf])[0]
    if isinstance(db, Session):
        # Remembered for this request's session, so a route can hand the client the index of
        # its own action (its receipt) without another query.
        db.info.setdefault(_RECORDED, []).append((event.action, index))
    return index


def recorded_index(db: Session, action: str) -> int | None:
    """The leaf index of the first event with `action` this session recorded, if any."""
    for recorded_action, index in db.info.get(_RECORDED, ()):
        if recorded_action == action:
            return index
    return None


_EVENTS = sa.table(
    "audit_events",
    *(
        sa.column(name)
        for name in (
            "id", "time", "actor_id", "action", "case_id", "file_id", "source", "result",
            "detail", "signed_record",
        )
    ),
)


def backfill_events(conn: Connection, batch: int = 1000) -> int:
    """Append every event that has no leaf yet, in id order (used by the migration)."""
    from vault.db.base import UTCDateTime

    events = sa.select(
        _EVENTS.c.id,
        sa.type_coerce(_EVENTS.c.time, UTCDateTime()).label("time"),
        *(_EVENTS.c[n] for n in ("actor_id", "action", "case_id", "file_id", "source")),
        *(_EVENTS.c[n] for n in ("result", "detail", "signed_record")),
    ).order_by(_EVENTS.c.id)
    logged = {r[0] for r in conn.execute(sa.select(LogLeaf.event_id))}
    total = 0
    pending: list[PendingLeaf] = []
    for row in conn.execute(events):
        if row.id in logged:
            continue
        pending.append(PendingLeaf(entry_for_event(row), row.id, row.case_id, row.actor_id))
        if len(pending) >= batch:
            total += len(append_leaves(conn, pending))
            pending = []
    total += len(append_leaves(conn, pending))
    return total


# --- reading the tree ----------------------------------------------------------------------


def tree_head(db: DbLike) -> tuple[int, bytes]:
    """(size, root hash) of the current tree, read without taking the append lock."""
    row = db.execute(
        sa.select(LogState.size, LogState.frontier).where(LogState.id == LOG_STATE_ID)
    ).one_or_none()
    if row is None:
        raise LogInconsistent("the log head row is missing")
    return row.size, merkle.root_from_frontier(_split_frontier(row.frontier))


# PostgreSQL: two statements whose text never changes, so psycopg prepares them once and the
# planner sees plain primary-key look-ups. A UNION ALL of one branch per hash (what SQLite
# gets) was planned as a parallel append when the tables had no statistics yet: two worker
# processes started for 27 point reads, 25 ms per proof at 10^6 leaves instead of a few.
_PG_LEAVES = sa.text(
    "SELECT 0 AS lv, leaf_index AS ix, leaf_hash AS h FROM log_leaves"
    " WHERE leaf_index = ANY(CAST(:ix AS bigint[]))"
)
_PG_NODES = sa.text(
    'SELECT n.level AS lv, n."index" AS ix, n.hash AS h FROM log_nodes AS n'
    " JOIN unnest(CAST(:lv AS smallint[]), CAST(:ix AS bigint[])) AS k(lv, ix)"
    ' ON n.level = k.lv AND n."index" = k.ix'
)


def _fetch_subtrees(db: DbLike, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """All the stored hashes a proof needs, as primary-key point look-ups in one or two round
    trips.

    On SQLite the statement is built as text on purpose: composing a large SQLAlchemy
    expression per proof costs more than the look-ups themselves, and a row-value IN is not
    index-assisted there. Only integers are bound; nothing from the request reaches the SQL.
    """
    keys = sorted(set(keys))
    if not keys:
        return {}
    bind = db if isinstance(db, Connection) else db.get_bind()
    if bind.dialect.name == "postgresql":
        leaves = [int(i) for lv, i in keys if lv == 0]
        nodes = [(int(lv), int(i)) for lv, i in keys if lv != 0]
        rows = list(db.execute(_PG_LEAVES, {"ix": leaves})) if leaves else []
        if nodes:
            rows += db.execute(_PG_NODES, {"lv": [lv for lv, _ in nodes],
                                           "ix": [i for _, i in nodes]})
    else:
        parts, params = [], {}
        for n, (level, index) in enumerate(keys):
            params[f"l{n}"], params[f"i{n}"] = int(level), int(index)
            if level == 0:
                parts.append(
                    f"SELECT :l{n} AS lv, leaf_index AS ix, leaf_hash AS h"  # noqa: S608
                    f" FROM log_leaves WHERE leaf_index = :i{n}"
                )
            else:
                parts.append(
                    f'SELECT :l{n} AS lv, "index" AS ix, hash AS h FROM log_nodes'  # noqa: S608
                    f' WHERE level = :l{n} AND "index" = :i{n}'
                )
        rows = db.execute(sa.text(" UNION ALL ".join(parts)), params)
    found = {(int(r.lv), int(r.ix)): bytes(r.h) for r in rows}
    missing = set(keys) - found.keys()
    if missing:
        raise LogInconsistent(f"stored log nodes are missing: {sorted(missing)[:3]}")
    return found


def _with_stored_subtrees(db: DbLike, build):
    """Run a proof builder twice: once to learn which subtrees it needs, once with them.

    Fetching them in two queries instead of one per subtree keeps proofs fast at 10^6 leaves.
    """
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return b"\x00" * merkle.HASH_SIZE

    build(record)
    stored = _fetch_subtrees(db, wanted)
    return build(lambda level, index: stored[(level, index)])


def _check_size(db: DbLike, size: int) -> None:
    current, _ = tree_head(db)
    if size > current:
        raise NotFound(f"the log has {current} entries")


def inclusion_proof(db: DbLike, *, index: int, size: int) -> list[bytes]:
    if not 0 <= index < size:
        raise InvalidRequest("index must be below size")
    _check_size(db, size)
    return _with_stored_subtrees(db, lambda sub: merkle.inclusion_proof(sub, index, size))


def consistency_proof(db: DbLike, *, first: int, second: int) -> list[bytes]:
    if not 0 <= first <= second:
        raise InvalidRequest("first must not exceed second")
    _check_size(db, second)
    return _with_stored_subtrees(db, lambda sub: merkle.consistency_proof(sub, first, second))


def root_at(db: DbLike, size: int) -> bytes:
    return _with_stored_subtrees(db, lambda sub: merkle.root_from_subtrees(sub, size))


def entries(
    db: DbLike,
    *,
    case_id: str | None = None,
    actor_id: str | None = None,
    start: int = 0,
    end: int | None = None,
    limit: int = MAX_ENTRIES_PAGE,
) -> list[LogLeaf]:
    """Leaves of one case, or of one actor, with start <= index < end, oldest first."""
    if (case_id is None) == (actor_id is None):
        raise ValueError("select entries by exactly one of case_id or actor_id")
    query = sa.select(LogLeaf).where(LogLeaf.leaf_index >= start)
    if end is not None:
        query = query.where(LogLeaf.leaf_index < end)
    if case_id is not None:
        query = query.where(LogLeaf.case_id == case_id)
    else:
        query = query.where(LogLeaf.actor_id == actor_id)
    query = query.order_by(LogLeaf.leaf_index).limit(max(1, min(limit, MAX_ENTRIES_PAGE)))
    if isinstance(db, Session):
        return list(db.scalars(query))
    return list(db.execute(query))


# --- the log key and checkpoints -----------------------------------------------------------


class LogKeyError(RuntimeError):
    """The log key file is unusable (wrong size, or readable by others)."""


@dataclass(frozen=True)
class LogSigner:
    signing_key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def origin(self) -> str:
        # Derived from the key, so a new key is a new log and can never continue the old one.
        return ORIGIN_PREFIX + hashlib.sha256(self.public_key).hexdigest()[:16]

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.origin, self.public_key)

    @classmethod
    def load_or_create(cls, path: Path) -> LogSigner:
        """Read the key file, creating it (mode 0600) on first start; safe against races."""
        path = Path(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, os.urandom(_SEED_SIZE))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # fails if another process created the key first
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LogKeyError(f"{path} must be readable by its owner only (chmod 600)")
        seed = path.read_bytes()
        if len(seed) != _SEED_SIZE:
            raise LogKeyError(f"{path} is not a log key")
        return cls(nacl.signing.SigningKey(seed))

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> LogSigner:
        return cls.load_or_create(Path(data_dir) / LOG_KEY_FILE)


def latest_checkpoint(db: DbLike) -> LogCheckpoint | None:
    query = sa.select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)
    if isinstance(db, Session):
        return db.scalars(query).first()
    return db.execute(query).first()


def _insert_ignoring_duplicates(db: DbLike, values: dict[str, Any]) -> None:
    module = postgresql if _dialect(db) == "postgresql" else sqlite
    db.execute(module.insert(LogCheckpoint).values(**values).on_conflict_do_nothing())


def current_checkpoint(db: DbLike, signer: LogSigner, *, now: datetime | None = None) -> str:
    """The signed checkpoint of the current tree; signs (and records) it the first time.

    Before signing a new size the server checks that the tree still extends the last
    checkpoint it published, so a tampered database cannot make it sign a fork.
    """
    # The last checkpoint first, then the tree: under READ COMMITTED (PostgreSQL, several
    # server processes) each statement sees a newer snapshot, and a checkpoint another process
    # signed between the two reads must not look like a tree that shrank.
    previous = latest_checkpoint(db)
    size, root = tree_head(db)
    cached = db.execute(
        sa.select(LogCheckpoint.root_hash, LogCheckpoint.note).where(
            LogCheckpoint.tree_size == size
        )
    ).one_or_none()
    if cached is not None:
        if cached.root_hash != root:
            raise LogInconsistent("the tree no longer matches a checkpoint it signed")
        return cached.note
    if previous is not None:
        if previous.tree_size > size:
            raise LogInconsistent("the tree is smaller than a checkpoint it signed")
        proof = consistency_proof(db, first=previous.tree_size, second=size)
        if not merkle.verify_consistency(
            previous.tree_size, size, previous.root_hash, root, proof
        ):
            raise LogInconsistent("the tree does not extend the last signed checkpoint")
    note = sign_checkpoint(Checkpoint(signer.origin, size, root), signer.signing_key)
    _insert_ignoring_duplicates(
        db,
        {
            "tree_size": size,
            "root_hash": root,
            "note": note,
            "signed_at": now or datetime.now(UTC),
        },
    )
    return note


def usernames(db: DbLike, user_ids: set[str]) -> dict[str, str]:
    """Usernames of actors, for display; the ids in the signed entries are what counts."""
    from vault.db.models import User

    if not user_ids:
        return {}
    rows = db.execute(sa.select(User.id, User.username).where(User.id.in_(user_ids)))
    return {r.id: r.username for r in rows}


def leaf_index_of_event(db: DbLike, event_id: int) -> int:
    """The leaf index of a recorded event, for the receipt a client keeps of its own action."""
    index = db.execute(
        sa.select(LogLeaf.leaf_index).where(LogLeaf.event_id == event_id)
    ).scalar_one_or_none()
    if index is None:
        raise NotFound("event is not in the log")
    return index


def is_case_member(db: DbLike, *, case_id: str, user_id: str) -> bool:
    """Current members read a case's events; the caller turns anything else into a 404."""
    from vault.db.models_cases import CaseMember

    row = db.execute(
        sa.select(CaseMember.user_id).where(
            CaseMember.case_id == case_id, CaseMember.user_id == user_id
        )
    ).first()
    return row is not None
