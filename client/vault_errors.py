"""Errors of client.vault that a user can act on; the message says what to do."""

from __future__ import annotations


class VaultError(Exception):
    """An operation failed for a reason the user can act on; the message says which."""


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


class ServerCopyDamaged(VaultError):
    """The server reports its stored blob missing or short: unavailable, nothing written."""

    def __init__(self, file_id: str) -> None:
        super().__init__(
            f"file {file_id} failed verification: the server's stored copy is damaged, so the "
            "file is unavailable and nothing was written; ask the server's operator to restore "
            "it from a backup"
        )
        self.file_id = file_id
