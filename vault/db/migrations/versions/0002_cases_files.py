"""Cases, membership log and state, key grants, files, versions, upload sessions and parts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db.base import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("encrypted_info", sa.Text(), nullable=False),
        sa.Column("membership_seq", sa.Integer(), nullable=False),
        sa.Column("membership_head", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_cases_created_by_users"),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
    )
    op.create_table(
        "case_members",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_case_members_case_id_cases", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_case_members_user_id_users"),
        sa.PrimaryKeyConstraint("case_id", "user_id", name="pk_case_members"),
    )
    op.create_index("ix_case_members_user_id", "case_members", ["user_id"], unique=False)
    op.create_table(
        "membership_entries",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("author_id", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sig", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name="fk_membership_entries_case_id_cases",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "seq", name="pk_membership_entries"),
    )
    op.create_table(
        "key_grants",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("granter_id", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sig", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_key_grants_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("case_id", "generation", "member_id", name="pk_key_grants"),
    )
    op.create_index("ix_key_grants_member_id", "key_grants", ["member_id"], unique=False)
    op.create_table(
        "files",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("file_id", sa.String(32), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_by", sa.String(32), nullable=True),
        sa.Column("tombstone_body", sa.Text(), nullable=True),
        sa.Column("tombstone_sig", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_files_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("case_id", "file_id", name="pk_files"),
    )
    op.create_table(
        "file_versions",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("file_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("blob_key", sa.String(32), nullable=False),
        sa.Column("blob_size", sa.BigInteger(), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("uploader_id", sa.String(32), nullable=False),
        sa.Column("manifest_body", sa.Text(), nullable=False),
        sa.Column("manifest_sig", sa.Text(), nullable=False),
        sa.Column("encrypted_metadata", sa.Text(), nullable=False),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id", "file_id"],
            ["files.case_id", "files.file_id"],
            name="fk_file_versions_case_id_files",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"], ["users.id"], name="fk_file_versions_uploader_id_users"
        ),
        sa.PrimaryKeyConstraint("case_id", "file_id", "version", name="pk_file_versions"),
        sa.UniqueConstraint("blob_key", name="uq_file_versions_blob_key"),
    )
    op.create_index(
        "ix_file_versions_uploader_id", "file_versions", ["uploader_id"], unique=False
    )
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("file_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("part_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_upload_sessions_case_id_cases", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_upload_sessions_user_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_upload_sessions"),
    )
    op.create_index("ix_upload_sessions_case_id", "upload_sessions", ["case_id"], unique=False)
    op.create_index("ix_upload_sessions_user_id", "upload_sessions", ["user_id"], unique=False)
    op.create_index(
        "ix_upload_sessions_updated_at", "upload_sessions", ["updated_at"], unique=False
    )
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("part_number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("blob_key", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["upload_sessions.id"],
            name="fk_upload_parts_upload_id_upload_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name="pk_upload_parts"),
        sa.UniqueConstraint("blob_key", name="uq_upload_parts_blob_key"),
    )


def downgrade() -> None:
    op.drop_table("upload_parts")
    op.drop_index("ix_upload_sessions_updated_at", table_name="upload_sessions")
    op.drop_index("ix_upload_sessions_user_id", table_name="upload_sessions")
    op.drop_index("ix_upload_sessions_case_id", table_name="upload_sessions")
    op.drop_table("upload_sessions")
    op.drop_index("ix_file_versions_uploader_id", table_name="file_versions")
    op.drop_table("file_versions")
    op.drop_table("files")
    op.drop_index("ix_key_grants_member_id", table_name="key_grants")
    op.drop_table("key_grants")
    op.drop_table("membership_entries")
    op.drop_index("ix_case_members_user_id", table_name="case_members")
    op.drop_table("case_members")
    op.drop_table("cases")
