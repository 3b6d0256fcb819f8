"""Keys of other people (DESIGN.md section 3): the server is the directory but is not trusted.

A colleague's identity record is pinned on first use. Afterwards the pinned record is what the
client verifies signatures with and seals keys to; a directory that serves a different key is a
hard stop (KeyChanged) until the user re-verifies the safety number and runs `trust`.

Names are held to the server's own alphabet (vault.protocol.usernames) wherever the client
receives one: a name outside it ("\u0430lice", Cyrillic a) can only be a look-alike planted by a
hostile server, and is refused rather than shown. Every person the client names has one of
three trust states (`trust_state`): "verified" (safety number compared, or yourself),
"unverified" (pinned on first use only), "changed" (a directory has since served another key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from client.api import Api, field
from client.crypto import IntegrityError
from client.errors import FingerprintMismatch, KeyChanged, NotFound, UnknownUser, VaultError
from client.keystore import Keystore, Pin
from vault.protocol.encoding import EncodingError, b64d, parse_canonical
from vault.protocol.records import (
    IdentityRecord,
    RecordError,
    normalize_safety_number,
    verify_identity_record,
)
from vault.protocol.usernames import is_valid_username

VERIFIED, UNVERIFIED, CHANGED = "verified", "unverified", "changed"


class ForeignUsername(IntegrityError):
    """The server named a person outside the account alphabet: a look-alike, refused."""

    def __init__(self, value: Any, where: str) -> None:
        # ascii() shows the look-alike for what it is: 'alice' vs '\u0430lice'.
        super().__init__(
            f"{where}: the server named a user {ascii(value)} outside the account alphabet "
            "(a-z, 0-9, '.', '_', '-'; 3 to 32): a look-alike of another name, refused")
        self.value = value


def check_username(value: Any, where: str) -> str:
    """`value` if it is a name the server could have registered; else ForeignUsername."""
    if not is_valid_username(value):
        raise ForeignUsername(value, where)
    return value


def check_typed_username(value: str) -> str:
    """A name the lawyer typed: one outside the alphabet names nobody (and may be pasted)."""
    if not is_valid_username(value):
        raise VaultError(f"{ascii(value)} is not a username (a-z, 0-9, '.', '_', '-'; "
                         "3 to 32 characters)")
    return value


class TrustStore:
    """The pinned keys of colleagues (in the keystore) checked against the server's directory."""

    def __init__(self, keystore: Keystore, api: Callable[[], Api]) -> None:
        self._keystore = keystore
        self._api = api

    def fetch(self, username: str) -> IdentityRecord:
        """The directory's current record for `username`, self-signature checked."""
        check_typed_username(username)
        try:
            reply = self._api().user_identity(username)
        except NotFound as exc:
            raise UnknownUser(username) from exc
        return _verified(field(reply, "identity"), username=username)

    def pin(self, record: IdentityRecord, *, verified: bool, replace: bool = False) -> Pin:
        existing = self._keystore.pin(record.username)
        if existing is not None and not replace:
            if existing.fingerprint != record.fingerprint_hex:
                raise self._changed(existing, record)
            if verified and not existing.verified:
                existing = Pin(**{**existing.__dict__, "verified": True})
                self._keystore.save_pin(existing)
            return existing
        pin = Pin(username=record.username, user_id=record.user_id,
                  fingerprint=record.fingerprint_hex, record=record.signed,
                  first_seen=int(time.time()), verified=verified)
        self._keystore.save_pin(pin)
        return pin

    def _changed(self, pin: Pin, served: IdentityRecord) -> KeyChanged:
        """Remember that the directory served another key, so the person shows as changed."""
        if pin.changed_to != served.fingerprint_hex:
            self._keystore.save_pin(Pin(**{**pin.__dict__, "changed_to": served.fingerprint_hex}))
        return KeyChanged(pin.username, served.safety_number)

    def trust_state(self, user_id: str, me: str | None = None) -> str:
        """verified, unverified or changed: what the client knows of this person's key."""
        if user_id == me:
            return VERIFIED  # our own key
        pin = self._keystore.pin_by_user_id(user_id)
        if pin is None:
            return UNVERIFIED
        if pin.changed_to is not None:
            return CHANGED
        return VERIFIED if pin.verified else UNVERIFIED

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
            raise self._changed(pin, served)
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
            check_username(username, "membership log")
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
        claimed = _claimed_username(signed)
        if claimed is not None and not is_valid_username(claimed):
            raise ForeignUsername(claimed, f"key of {username} as published") from exc
        raise IntegrityError(f"key of {username} as published by the server") from exc
    if record.username != username:
        raise IntegrityError(f"key of {username} as published by the server")
    return record


def _claimed_username(signed: Any) -> Any:
    """The username a record names, read without trusting it (for the error message)."""
    try:
        return parse_canonical(b64d(signed["body"])).get("username")
    except (EncodingError, TypeError, KeyError, AttributeError, ValueError):
        return None


# ---------------------------------------------------------------- people nobody verified
# (session: client.session.Session, ctx: client.cases.CaseContext; both import this module.)


def unverified_members(session: Any, ctx: Any) -> list[dict[str, Any]]:
    """The case's other members whose safety number was never compared (or whose key a
    directory has since changed): whoever holds their key reads what is encrypted there."""
    out = []
    for m in ctx.state.members.values():
        state = session.trust.trust_state(m.user_id, ctx.me)
        if state != VERIFIED:
            record = ctx.identities[m.user_id]
            out.append({"username": record.username, "trust": state,
                        "safety_number": record.safety_number,
                        "fingerprint": record.fingerprint_hex})
    return sorted(out, key=lambda p: p["username"])


def confirm_people(session: Any, people: list[dict[str, Any]],
                   action: str) -> list[dict[str, Any]]:
    """Ask once per (person, key) before `action` reaches people who are not verified.

    The session's `confirm` hook answers True (go on, and remember the answer for that key),
    False (stop) or None (go on without asking: there is no one to ask; the caller reports the
    state). Returns `people` with whether each was confirmed, for the caller's result.
    """
    keystore = session.keystore
    pending = [p for p in people if not keystore.is_confirmed(p["username"], p["fingerprint"])]
    answer = session.confirm(pending, action) if pending else True
    if answer is False:
        raise VaultError(f"{action} cancelled: not confirmed")
    if answer:
        for p in pending:
            keystore.remember_confirmed(p["username"], p["fingerprint"])
    return [{"username": p["username"], "trust": p["trust"],
             "safety_number": p["safety_number"],
             "confirmed": bool(answer) or p not in pending} for p in people]
