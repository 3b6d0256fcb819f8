"""Versions kept as the ordered list of their part blobs instead of one concatenated blob.

Versions completed before this revision have no rows in the new table and stay readable as
they are: a version without part rows is the one blob `file_versions.blob_key`.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_version_parts",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("file_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("part_number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("blob_key", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id", "file_id", "version"],
            ["file_versions.case_id", "file_versions.file_id", "file_versions.version"],
            name="fk_file_version_parts_version",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "case_id", "file_id", "version", "part_number", name="pk_file_version_parts"
        ),
        sa.UniqueConstraint("blob_key", name="uq_file_version_parts_blob_key"),
    )


def downgrade() -> None:
    # Without this table a multi-part version would read as its first part alone.
    count = op.get_bind().scalar(sa.text("SELECT count(*) FROM file_version_parts"))
    if count:
        raise RuntimeError(
            "file versions are stored in parts; downgrading below 0004 would make them unreadable"
        )
    op.drop_table("file_version_parts")
