"""Models of the server. Importing this package registers every table on `Base.metadata`."""

from vault.db.models.accounts import AuthSession, Invite, RateLimitBucket, TotpRecoveryCode, User
from vault.db.models.events import AuditEvent

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Invite",
    "RateLimitBucket",
    "TotpRecoveryCode",
    "User",
]
