"""Models of the server, one module per feature. Importing this package registers every table
on `Base.metadata`."""

from vault.db.models.accounts import AuthSession, Invite, RateLimitBucket, TotpRecoveryCode, User
from vault.db.models.aggregates import EventAggregate
from vault.db.models.cases import Case, CaseMember, KeyGrant, MembershipEntryRow
from vault.db.models.events import AuditEvent
from vault.db.models.files import FileRow, FileVersion, FileVersionPart
from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode, LogState
from vault.db.models.uploads import UploadPart, UploadSession

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Case",
    "CaseMember",
    "EventAggregate",
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
