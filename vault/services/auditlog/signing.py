"""The log key and checkpoints: the Ed25519 key the server signs tree heads with (a 0600 file
in the data directory), and the signed checkpoint of the current tree, which the server only
signs after checking that the tree extends the last one it published."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.signing
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vault.db.models.log import LogCheckpoint
from vault.protocol import merkle
from vault.protocol.checkpoint import Checkpoint, NoteVerifier, sign_checkpoint
from vault.services.auditlog.base import DbLike, LogInconsistent
from vault.services.auditlog.tree import consistency_proof, tree_head

LOG_KEY_FILE = "log.key"
ORIGIN_PREFIX = "casevault.log/"
_SEED_SIZE = 32


def _dialect(db: DbLike) -> str:
    bind = db.get_bind() if isinstance(db, Session) else db
    return bind.dialect.name


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
