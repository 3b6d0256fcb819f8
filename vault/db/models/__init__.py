"""Models of the server. Importing this package registers every table on `Base.metadata`."""

# Case, file and upload tables live beside this package; importing registers them too.
import vault.db.models_cases  # noqa: F401
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
