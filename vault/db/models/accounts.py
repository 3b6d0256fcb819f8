"""Accounts, TOTP recovery codes, sessions, invites and rate-limit buckets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.db.base import Base, BigIntPK, UTCDateTime

ACCOUNT_PENDING = "pending"
ACCOUNT_ACTIVE = "active"

SESSION_LOGIN = "login"
SESSION_RECOVERY = "recovery"


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    # Client KDF salt and parameters, returned by prelogin. mem is in bytes.
    kdf_salt: Mapped[bytes] = mapped_column(LargeBinary)
    kdf_ops: Mapped[int] = mapped_column(Integer)
    kdf_mem: Mapped[int] = mapped_column(BigInteger)

    # argon2-cffi hashes of the client's auth_key and of the recovery proof.
    auth_key_hash: Mapped[str] = mapped_column(String(255))
    recovery_auth_hash: Mapped[str] = mapped_column(String(255))

    # Self-signed public identity record, kept as the exact bytes the client signed (b64).
    identity_body: Mapped[str] = mapped_column(Text)
    identity_sig: Mapped[str] = mapped_column(Text)
    # The private identity wrapped under kek and under the recovery key: opaque to the server.
    identity_wrapped_kek: Mapped[str] = mapped_column(Text)
    identity_wrapped_recovery: Mapped[str] = mapped_column(Text)

    # TOTP secret sealed with the server key (nonce || ciphertext); never stored in the clear.
    totp_secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # Highest TOTP time step accepted; a step is accepted only if greater (no replay, no A-B-A).
    last_totp_step: Mapped[int] = mapped_column(BigInteger, default=0)


class TotpRecoveryCode(Base):
    __tablename__ = "totp_recovery_codes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of a high-entropy random code: a slow hash adds nothing at 80 bits.
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id_purpose", "user_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the bearer token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RateLimitBucket(Base):
    """A fixed-window attempt counter shared by every server process through the database."""

    __tablename__ = "rate_limits"

    bucket: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
