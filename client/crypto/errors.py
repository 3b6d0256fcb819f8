"""The one exception of client.crypto for everything that fails verification."""

from __future__ import annotations


class IntegrityError(Exception):
    """Something did not verify: a signature, an AEAD tag, a hash, a chain or a key's authority.

    The message names what was being checked, never why it failed, so it gives no oracle.
    """

    def __init__(self, what: str = "data") -> None:
        super().__init__(f"{what} failed verification")
        self.what = what


class WeakKdfParameters(IntegrityError):
    """Key-derivation parameters below the floor: refused whoever proposed them."""

    def __init__(self) -> None:
        super().__init__("key-derivation parameters")


class InvalidRecoveryCode(ValueError):
    """A recovery code was mistyped (wrong length, letters or checksum)."""
