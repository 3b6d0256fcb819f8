"""Every error the client raises, under one root, so a face (the CLI, later the UI) can decide
what a failure means by looking up its class, and a new subclass inherits its parent's meaning.

- ApiError: the server refused or failed; `code` is the stable slug of its problem+json.
- VaultError: an operation failed for a reason the user can act on; the message says which.
- KeystoreError: the local state in CASEVAULT_HOME is unreadable or damaged.
- AuditVerificationError: the server's audit log failed verification (with saved evidence).

Two families stay where they are and are re-exported here: client.crypto's IntegrityError
(something failed verification; client.crypto must not depend on the rest of the client) and
InvalidRecoveryCode (a ValueError from the recovery-code parser). The CLI's exit-code table
(client/cli/exits.py) names them beside ClientError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from client.crypto.errors import IntegrityError, WeakKdfParameters
from client.crypto.kdf import InvalidRecoveryCode


class ClientError(Exception):
    """The root of every error raised by the client library outside client.crypto."""


# ---------------------------------------------------------------- the server said no


class ApiError(ClientError):
    """The server answered with an error. `code` is the stable slug of its problem+json."""

    message = "the server refused the request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str = "error",
        status: int = 0,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.message
        self.code = code
        self.status = status
        self.problem = problem or {}
        super().__init__(self.detail)


class InvalidRequest(ApiError):
    message = "the server rejected the request as invalid"


class NotAuthenticated(ApiError):
    message = "not logged in or the session expired; run `casevault login`"


class InvalidCredentials(ApiError):
    message = "wrong username, passphrase or code"


class Forbidden(ApiError):
    message = "you are not allowed to do that"


class InviteRequired(Forbidden):
    message = "registration needs a valid invite code"


class NotFound(ApiError):
    message = "not found (or you are not a member of that case)"


class Conflict(ApiError):
    message = "conflict with the current state on the server; try again"


class UsernameTaken(Conflict):
    message = "that username is taken"


class MembershipStale(Conflict):
    """409 membership_stale: the record was signed at a membership head that is no longer the
    head. Uploads and deletions reload the case and sign again once before raising it."""

    message = ("the case's membership changed while you worked (another owner added, removed or "
               "changed a member); nothing was changed; run the command again")


class CaseOnHold(Conflict):
    """409 case_on_hold, or the client's own refusal: a legal hold stands on the case."""

    message = ("the case is under a legal hold: nothing in it can be deleted until an owner "
               "releases the hold (casevault hold CASE_ID --release)")


class PayloadTooLarge(ApiError):
    message = "the server refused the size of the upload"


class InsufficientStorage(ApiError):
    """507: the upload was refused for lack of room, not because anything failed."""

    message = ("the server's storage is full; nothing was stored. Ask the server's operator "
               "to free space, then run the command again")


class QuotaExceeded(InsufficientStorage):
    message = "your storage quota on the server would be exceeded; nothing was stored"


class RateLimited(ApiError):
    message = "too many attempts; wait and try again"

    @property
    def retry_after(self) -> int | None:
        value = self.problem.get("retry_after")
        return value if isinstance(value, int) else None


class ServerError(ApiError):
    message = "the server failed; quote the request id to the operator"


class BlobDamaged(ServerError):
    message = "the server's stored copy of the file is damaged or missing"


class Unreachable(ApiError):
    message = "the server is unreachable"


class InsecureTransport(ApiError):
    message = "refusing plain http to a non-loopback address; use https"


# The client's own bounds on what it reads (client.transport, SPEC.md "Client limits"): the
# reply is given up, nothing of it is used.


class ServerTooSlow(Unreachable):
    message = ("the server did not finish answering in time; nothing of its reply was used. "
               "Try again later; if it persists, tell the server's operator")


class ServerReplyTooLarge(ApiError):
    message = ("the server's reply was larger than the client accepts for this request, so it "
               "was not read; a faulty or hostile server sends such replies")


class MalformedReply(ApiError):
    message = ("the server's reply was malformed (not JSON, nested too deeply or numbers too "
               "long), so it was not read; a faulty or hostile server sends such replies")


# ---------------------------------------------------------------- the user can act on it


class VaultError(ClientError):
    """An operation failed for a reason the user can act on; the message says which."""


class SessionExpired(NotAuthenticated, VaultError):
    """A request made with the saved session was refused as unauthenticated."""

    message = "the session expired or was ended; run `casevault login`"


class NotLoggedIn(VaultError):
    def __init__(self) -> None:
        super().__init__("not logged in; run `casevault login USERNAME`")


class CodeAlreadyUsed(VaultError):
    def __init__(self, *, one_time: bool = False) -> None:
        super().__init__(
            "this one-time TOTP recovery code was already used; use another one" if one_time
            else "this code was already used; wait for the next code from the authenticator app"
        )


class UnknownUser(VaultError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user named {username!r} on this server")


class KeyChanged(VaultError):
    """A colleague's key differs from the pinned one: hard stop until `trust`."""

    def __init__(self, username: str, safety_number: str) -> None:
        super().__init__(
            f"the key of {username} CHANGED since it was pinned; this may be an attack. "
            f"Verify the new safety number {safety_number} with {username} over a trusted "
            f"channel, then run `casevault trust {username} NUMBER`"
        )
        self.username = username
        self.safety_number = safety_number


class FingerprintMismatch(VaultError):
    def __init__(self, username: str) -> None:
        super().__init__(
            f"the safety number of {username} does not match the one given; nothing was shared"
        )
        self.username = username


class NotAMember(VaultError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} does not exist or you are not a member")


class ServerCopyDamaged(VaultError):
    """The server reports its stored blob missing or short: unavailable, nothing written."""

    def __init__(self, file_id: str) -> None:
        super().__init__(
            f"file {file_id} failed verification: the server's stored copy is damaged, so the "
            "file is unavailable and nothing was written; ask the server's operator to restore "
            "it from a backup"
        )
        self.file_id = file_id


class LocalCopyDamaged(ClientError):
    """The encrypted copy kept for a resume no longer matches its recorded part hashes.

    Caught inside the upload, which then encrypts the file again; it never reaches a user."""


# ---------------------------------------------------------------- local state and the log


class KeystoreError(ClientError):
    """The local state in CASEVAULT_HOME is unreadable, damaged or unsafe."""


class AuditVerificationError(ClientError):
    """The server's log failed verification; `evidence` is the file that records what it showed."""

    def __init__(self, problem: str, evidence: Path | None = None) -> None:
        self.problem = problem
        self.evidence = evidence
        where = f" (evidence saved to {evidence})" if evidence else ""
        super().__init__(f"audit log verification failed: {problem}{where}")


# ---------------------------------------------------------------- problem codes -> classes

# Every `code` the server sends in a problem+json body, and the class it becomes. A code the
# server adds later and this table lacks falls back by HTTP status (ERRORS_BY_STATUS), then to
# ServerError (5xx) or ApiError; tests/contract/test_error_codes_client.py keeps the two sides
# in step.
ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_request": InvalidRequest,
    "weak_kdf_parameters": InvalidRequest,
    "invalid_identity_record": InvalidRequest,
    "invalid_record": InvalidRequest,
    "invalid_encoding": InvalidRequest,
    "part_mismatch": InvalidRequest,
    "manifest_mismatch": InvalidRequest,
    "not_authenticated": NotAuthenticated,
    "invalid_credentials": InvalidCredentials,
    "forbidden": Forbidden,
    "insufficient_role": Forbidden,
    "invite_required": InviteRequired,
    "not_found": NotFound,
    "file_deleted": NotFound,
    "conflict": Conflict,
    "case_exists": Conflict,
    "membership_conflict": Conflict,
    "membership_stale": MembershipStale,
    "case_on_hold": CaseOnHold,
    "version_conflict": Conflict,
    "upload_incomplete": Conflict,
    "username_taken": UsernameTaken,
    "payload_too_large": PayloadTooLarge,
    "part_too_large": PayloadTooLarge,
    "file_too_large": PayloadTooLarge,
    "insufficient_storage": InsufficientStorage,
    "storage_full": InsufficientStorage,
    "quota_exceeded": QuotaExceeded,
    "rate_limited": RateLimited,
    "unavailable": ServerError,
    "log_inconsistent": ServerError,
    "blob_damaged": BlobDamaged,
    "internal_error": ServerError,
}

# Codes the server's framework layer sends for requests the client never makes (an unknown
# route or method, a wrong content type). They need no class of their own: the status table
# below turns them into ApiError or InvalidRequest, which is the documented fallback.
FALLBACK_CODES: dict[str, str] = {
    "method_not_allowed": "405: ApiError (the client only calls routes that exist)",
    "not_acceptable": "406: ApiError",
    "unsupported_media_type": "415: ApiError",
    "http_error": "any other framework status: by ERRORS_BY_STATUS, else ApiError/ServerError",
}

ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    507: InsufficientStorage,
}

# Classes whose own sentence replaces the server's detail: a lawyer gets the plain sentence,
# not the slug or the server's wording.
PLAIN_MESSAGE: tuple[type[ApiError], ...] = (
    NotAuthenticated, InvalidCredentials, NotFound, RateLimited, BlobDamaged, InsufficientStorage,
    MembershipStale, CaseOnHold,
)


def error_class(code: str, status: int) -> type[ApiError]:
    """The class for a problem `code` (or, for an unknown code, the HTTP status)."""
    cls = ERRORS_BY_CODE.get(code) or ERRORS_BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls


__all__ = [
    "ERRORS_BY_CODE", "ERRORS_BY_STATUS", "FALLBACK_CODES", "ApiError", "AuditVerificationError",
    "BlobDamaged", "CaseOnHold", "ClientError", "CodeAlreadyUsed", "Conflict",
    "FingerprintMismatch",
    "Forbidden", "InsecureTransport", "InsufficientStorage", "IntegrityError",
    "InvalidCredentials", "InvalidRecoveryCode", "InvalidRequest", "InviteRequired", "KeyChanged",
    "KeystoreError", "LocalCopyDamaged", "MalformedReply", "MembershipStale", "NotAMember",
    "NotAuthenticated", "NotFound", "NotLoggedIn", "PayloadTooLarge", "QuotaExceeded",
    "RateLimited", "ServerCopyDamaged", "ServerError", "ServerReplyTooLarge", "ServerTooSlow",
    "SessionExpired", "Unreachable", "UnknownUser",
    "UsernameTaken", "VaultError", "WeakKdfParameters", "error_class",
]
