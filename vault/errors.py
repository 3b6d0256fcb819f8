"""Domain errors of the server. Each has a stable `code` slug; HTTP status codes live only in
vault.api.problems, which maps these classes (by inheritance) to problem+json responses.

Add a new error by subclassing the closest category below; it then gets that category's status.
"""

from __future__ import annotations

from typing import Any


class VaultError(Exception):
    """Base of every error the server reports to a client."""

    code = "error"
    title = "Request failed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class InvalidRequest(VaultError):
    code = "invalid_request"
    title = "The request is not valid"


class WeakKdfParameters(InvalidRequest):
    code = "weak_kdf_parameters"
    title = "KDF parameters are below the accepted minimum"


class InvalidEncoding(InvalidRequest):
    # The one error for input that is not strict JSON or canonical cv1 (bad UTF-8, a lone
    # surrogate, duplicate keys, an integer out of range, floats, nesting too deep): every
    # parser's failure becomes this 400, so none of them can reach a 500.
    code = "invalid_encoding"
    title = "The request is not in the required encoding"


class InvalidIdentityRecord(InvalidRequest):
    code = "invalid_identity_record"
    title = "The identity record is not valid"


class NotAuthenticated(VaultError):
    code = "not_authenticated"
    title = "Authentication required"


class InvalidCredentials(VaultError):
    # One error for every login failure: unknown name, wrong key, wrong or replayed code.
    code = "invalid_credentials"
    title = "Invalid credentials"


class Forbidden(VaultError):
    code = "forbidden"
    title = "Not allowed"


class InviteRequired(Forbidden):
    code = "invite_required"
    title = "Registration needs a valid invite code"


class NotFound(VaultError):
    code = "not_found"
    title = "Not found"


class Conflict(VaultError):
    code = "conflict"
    title = "Conflict with the current state"


class UsernameTaken(Conflict):
    code = "username_taken"
    title = "That username is taken"


class CaseOnHold(Conflict):
    # A legal hold stands at the head of the case's signed membership log (SPEC 4.2.1): no
    # file or version of the case may be deleted until an owner signs a release.
    code = "case_on_hold"
    title = "The case is under a legal hold; nothing in it can be deleted"


class PayloadTooLarge(VaultError):
    code = "payload_too_large"
    title = "Payload too large"


class InsufficientStorage(VaultError):
    code = "insufficient_storage"
    title = "Not enough storage"


class StorageDamaged(VaultError):
    # The stored blob is missing or shorter than its row says: the server's own fault and not
    # transient, so neither a client mistake (4xx) nor a retry hint (503).
    code = "blob_damaged"
    title = "The server's stored copy of this file is damaged"


class RateLimited(VaultError):
    code = "rate_limited"
    title = "Too many attempts"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(VaultError):
    code = "unavailable"
    title = "Service temporarily unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
