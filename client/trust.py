"""Keys of other people (DESIGN.md section 3): the server is the directory but is not trusted.

A colleague's identity record is pinned on first use. Afterwards the pinned record is what the
client verifies signatures with and seals keys to; a directory that serves a different key is a
hard stop (KeyChanged) until the user re-verifies the safety number and runs `trust`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from client.api import Api, field
from client.crypto import IntegrityError
from client.errors import FingerprintMismatch, KeyChanged, NotFound, UnknownUser, VaultError
from client.keystore import Keystore, Pin
from vault.protocol.encoding import EncodingError
from vault.protocol.records import (
    IdentityRecord,
    RecordError,
    normalize_safety_number,
    verify_identity_record,
)


class TrustStore:
    """The pinned keys of colleagues (in the keystore) checked against the server's directory."""

    def __init__(self, keystore: Keystore, api: Callable[[], Api]) -> None:
        self._keystore = keystore
        self._api = api

    def fetch(self, username: str) -> IdentityRecord:
        """The directory's current record for `username`, self-signature checked."""
        try:
            reply = self._api().user_identity(username)
        except NotFound as exc:
            raise UnknownUser(username) from exc
        return _verified(field(reply, "identity"), username=username)

    def pin(self, record: IdentityRecord, *, verified: bool, replace: bool = False) -> Pin:
        existing = self._keystore.pin(record.username)
        if existing is not None and not replace:
            if existing.fingerprint != record.fingerprint_hex:
                raise KeyChanged(record.username, record.safety_number)
            if verified and not existing.verified:
                existing = Pin(**{**existing.__dict__, "verified": True})
                self._keystore.save_pin(existing)
            return existing
        pin = Pin(username=record.username, user_id=record.user_id,
                  fingerprint=record.fingerprint_hex, record=record.signed,
                  first_seen=int(time.time()), verified=verified)
        self._keystore.save_pin(pin)
        return pin

    def for_sharing(self, username: str, fingerprint: str | None) -> tuple[IdentityRecord, bool,
                                                                             bool]:
        """The key to seal to: (record, first_seen, verified). A changed key stops here."""
        served = self.fetch(username)
        wanted = None
        if fingerprint is not None:
            try:
                wanted = normalize_safety_number(fingerprint)
            except RecordError as exc:
                raise VaultError(str(exc)) from exc
        pin = self._keystore.pin(username)
        if pin is not None and pin.fingerprint != served.fingerprint_hex:
            raise KeyChanged(username, served.safety_number)
        if wanted is not None and served.safety_number != wanted:
            raise FingerprintMismatch(username)
        first_seen = pin is None
        pin = self.pin(served, verified=wanted is not None)
        return verified_record(pin.record), first_seen, pin.verified

    def identities(self, usernames: Mapping[str, str],
                   own: IdentityRecord) -> dict[str, IdentityRecord]:
        """Records of the users a membership log names (user id -> username), pinned ones
        from the pin store and new ones pinned now. The log replay then checks that every
        author and subject key is the one the log's owners signed for."""
        out: dict[str, IdentityRecord] = {own.user_id: own}
        for user_id, username in usernames.items():
            if user_id == own.user_id:
                continue
            pin = self._keystore.pin_by_user_id(user_id)
            if pin is None:
                record = self.fetch(username)
                if record.user_id != user_id:
                    raise IntegrityError(f"key of {username}")
                pin = self.pin(record, verified=False)
            out[user_id] = verified_record(pin.record)
        return out

    def usernames(self, user_ids: Iterable[str]) -> dict[str, str]:
        names: dict[str, str] = {}
        for user_id in user_ids:
            pin = self._keystore.pin_by_user_id(user_id)
            if pin is not None:
                names[user_id] = pin.username
        return names


def verified_record(signed: Any) -> IdentityRecord:
    try:
        return verify_identity_record(signed)
    except (RecordError, EncodingError, TypeError) as exc:
        raise IntegrityError("pinned key") from exc


def _verified(signed: Any, *, username: str) -> IdentityRecord:
    try:
        record = verify_identity_record(signed)
    except (RecordError, EncodingError, TypeError) as exc:
        raise IntegrityError(f"key of {username} as published by the server") from exc
    if record.username != username:
        raise IntegrityError(f"key of {username} as published by the server")
    return record
