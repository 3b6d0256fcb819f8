"""Keys of other people (DESIGN.md section 3): show a safety number, and mark a colleague's
key as verified after the number was compared over a trusted channel. The pinning itself is
client.trust's TrustStore, which every operation that shares or verifies goes through."""

from __future__ import annotations

from typing import Any

from client.errors import FingerprintMismatch, VaultError
from client.session import Session
from vault.protocol.records import RecordError, normalize_safety_number, verify_identity_record


class Colleagues:
    """Safety numbers and explicit trust, over a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def fingerprint(self, username: str | None = None) -> dict[str, Any]:
        profile = self.session.profile()
        if username is None or username == profile.username:
            record = verify_identity_record(profile.identity_record)
            return {"username": profile.username, "safety_number": record.safety_number,
                    "fingerprint": record.fingerprint_hex, "verified": True}
        pin = self.session.keystore.pin(username)
        if pin is None:
            record = self.session.trust.fetch(username)
            return {"username": username, "safety_number": record.safety_number,
                    "fingerprint": record.fingerprint_hex, "verified": False, "pinned": False}
        record = verify_identity_record(pin.record)
        return {"username": username, "safety_number": record.safety_number,
                "fingerprint": record.fingerprint_hex, "verified": pin.verified, "pinned": True}

    def trust(self, username: str, safety_number: str) -> dict[str, Any]:
        """Pin the directory's current key of `username` as verified, if the number matches."""
        try:
            wanted = normalize_safety_number(safety_number)
        except RecordError as exc:
            raise VaultError(str(exc)) from exc
        record = self.session.trust.fetch(username)
        if record.safety_number != wanted:
            raise FingerprintMismatch(username)
        self.session.trust.pin(record, verified=True, replace=True)
        return {"username": username, "safety_number": record.safety_number, "verified": True}
