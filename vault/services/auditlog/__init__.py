"""The server side of the Merkle audit log, one idea per module:

- `entries`: the exact bytes of the leaf an event becomes, and reading entries back;
- `append`: appending leaves (in the event's own transaction) and the migration's backfill;
- `tree`: the tree head, inclusion and consistency proofs, past roots;
- `ranges`: runs of skeletons with their frontier (range requests) and `first_v2`;
- `signing`: the log key and the signed checkpoints.

Importers use the names re-exported here.
"""

from vault.services.auditlog.append import (
    PendingLeaf,
    append_event,
    append_leaves,
    backfill_events,
)
from vault.services.auditlog.base import DbLike, LogInconsistent
from vault.services.auditlog.entries import (
    AUDIT_EVENTS,
    ENTRY_VERSION,
    MAX_ENTRIES_PAGE,
    entries,
    entry_for_event,
    format_time,
    is_case_member,
    leaf_for_event,
    leaf_index_of_event,
    select_event_rows,
    source_openings,
    usernames,
)
from vault.services.auditlog.ranges import MAX_RANGE_PAGE, LeafRange, first_v2, leaf_range
from vault.services.auditlog.signing import (
    LOG_KEY_FILE,
    ORIGIN_PREFIX,
    LogKeyError,
    LogSigner,
    current_checkpoint,
    latest_checkpoint,
)
from vault.services.auditlog.tree import consistency_proof, inclusion_proof, root_at, tree_head

__all__ = [
    "AUDIT_EVENTS",
    "ENTRY_VERSION",
    "LOG_KEY_FILE",
    "MAX_ENTRIES_PAGE",
    "MAX_RANGE_PAGE",
    "ORIGIN_PREFIX",
    "DbLike",
    "LeafRange",
    "LogInconsistent",
    "LogKeyError",
    "LogSigner",
    "PendingLeaf",
    "append_event",
    "append_leaves",
    "backfill_events",
    "consistency_proof",
    "current_checkpoint",
    "entries",
    "entry_for_event",
    "first_v2",
    "format_time",
    "inclusion_proof",
    "is_case_member",
    "latest_checkpoint",
    "leaf_for_event",
    "leaf_range",
    "leaf_index_of_event",
    "root_at",
    "select_event_rows",
    "source_openings",
    "tree_head",
    "usernames",
]
