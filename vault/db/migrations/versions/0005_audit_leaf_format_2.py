"""Audit leaf format 2: a public skeleton in the tree, a body shown to members only.

Leaves already in the log stay byte-identical (clients pinned checkpoints over them). On a log
that holds history, one last format-1 leaf is appended first: a marker event with no actor,
case, address or detail, so that the leaf just before `first_v2` can be shown to every user
(a client checks it is format 1 before pinning `first_v2`) without revealing anyone's event.
`first_v2` is then the log size, recorded once here; on a fresh database it is 0.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from vault.db.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Kept here, not imported: a migration's behaviour must not change when the code does.
FORMAT_2_MARKER_ACTION = "server:log:leaf_format_changed"


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("source_nonce", sa.LargeBinary(), nullable=True))
    op.add_column("log_leaves", sa.Column("body", sa.LargeBinary(), nullable=True))
    op.add_column("log_state", sa.Column("first_v2", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    size = conn.execute(sa.text("SELECT size FROM log_state WHERE id = 1")).scalar_one()
    if size:
        conn.execute(
            sa.text(
                "INSERT INTO audit_events (time, action, result, detail)"
                " VALUES (:time, :action, 'success', '{}')"
            ).bindparams(sa.bindparam("time", type_=UTCDateTime())),
            {
                "time": datetime.now(UTC),
                "action": FORMAT_2_MARKER_ACTION,
            },
        )
        # Import here: the marker is appended by the one definition of a format-1 leaf.
        from vault.services.auditlog import backfill_events

        backfill_events(conn)
        size = conn.execute(sa.text("SELECT size FROM log_state WHERE id = 1")).scalar_one()
    conn.execute(sa.text("UPDATE log_state SET first_v2 = :n WHERE id = 1"), {"n": size})


def downgrade() -> None:
    # Format-2 leaves cannot be read back as format 1: refuse rather than leave a broken log.
    conn = op.get_bind()
    v2 = conn.execute(
        sa.text("SELECT count(*) FROM log_leaves WHERE body IS NOT NULL")
    ).scalar_one()
    if v2:
        raise RuntimeError("the audit log holds format-2 leaves; it cannot go below 0005")
    for table, column in (
        ("log_state", "first_v2"), ("log_leaves", "body"), ("audit_events", "source_nonce")
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
