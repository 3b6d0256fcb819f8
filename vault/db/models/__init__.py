"""Models of the server, one module per feature. Importing this package registers every table
on `Base.metadata`."""

from vault.db.models.accounts import AuthSession, Invite, RateLimitBucket, TotpRecoveryCode, User
from vault.db.models.cases import (
    Case,
    CaseMember,
    FileRow,
    FileVersion,
    FileVersionPart,
    KeyGrant,
    MembershipEntryRow,
    UploadPart,
    UploadSession,
)
from vault.db.models.events import AuditEvent
from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode, LogState

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Case",
    "CaseMember",
    "FileRow",
    "FileVersion",
    "FileVersionPart",
    "Invite",
    "KeyGrant",
    "LogCheckpoint",
    "LogLeaf",
    "LogNode",
    "LogState",
    "MembershipEntryRow",
    "RateLimitBucket",
    "TotpRecoveryCode",
    "UploadPart",
    "UploadSession",
    "User",
]
