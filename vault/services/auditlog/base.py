"""What every part of the audit log service shares: the database handle it accepts, the head's
compact range format, and the error for a log that contradicts itself."""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from vault.errors import ServiceUnavailable
from vault.protocol import merkle

# Appends run in a request's ORM session and in the migration's bare connection alike.
DbLike = Session | Connection


class LogInconsistent(ServiceUnavailable):
    code = "log_inconsistent"
    title = "The audit log failed its own consistency check"


def split_frontier(blob: bytes) -> list[bytes]:
    """The stored compact range (concatenated hashes, largest subtree first) as a list."""
    return [blob[i : i + merkle.HASH_SIZE] for i in range(0, len(blob), merkle.HASH_SIZE)]
