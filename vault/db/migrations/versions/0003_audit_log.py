"""Merkle audit log: state, leaves, perfect-subtree nodes, signed checkpoints.

Events recorded before this revision become the first leaves, in the order of their ids, so the
log covers the whole history from the start.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log_state"),
    )
    op.create_table(
        "log_leaves",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.Column("actor_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("leaf_index", name="pk_log_leaves"),
        sa.UniqueConstraint("event_id", name="uq_log_leaves_event_id"),
    )
    op.create_index(
        "ix_log_leaves_case_id_leaf_index", "log_leaves", ["case_id", "leaf_index"]
    )
    op.create_index(
        "ix_log_leaves_actor_id_leaf_index", "log_leaves", ["actor_id", "leaf_index"]
    )
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "index", name="pk_log_nodes"),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_log_checkpoints"),
    )
    op.execute(sa.text("INSERT INTO log_state (id, size, frontier) VALUES (1, 0, :f)").bindparams(
        sa.bindparam("f", b"", type_=sa.LargeBinary())
    ))
    # Import here: the backfill reuses the one definition of an entry and of an append.
    from vault.services.auditlog import backfill_events

    backfill_events(op.get_bind())


def downgrade() -> None:
    op.drop_table("log_checkpoints")
    op.drop_table("log_nodes")
    op.drop_index("ix_log_leaves_actor_id_leaf_index", table_name="log_leaves")
    op.drop_index("ix_log_leaves_case_id_leaf_index", table_name="log_leaves")
    op.drop_table("log_leaves")
    op.drop_table("log_state")
