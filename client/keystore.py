"""Local client state in CASEVAULT_HOME: folder 0700, files 0600, every write atomic.

What is kept here, and what is not:
- profile.json: server URL, username, user id, the account's KDF parameters (salt, ops, mem)
  and the private identity wrapped under `kek`. The unwrapped identity and the kek are never
  written; every command that needs them re-derives the kek from the passphrase
  (CASEVAULT_PASSPHRASE or a prompt). Keeping the KDF parameters locally also means a later
  command never has to ask the server how to derive its own keys.
- session.json: the bearer token of the current session.
- pins.json: colleagues' identity records pinned on first use (trust on first use), each with its
  fingerprint, first-seen time and whether it was verified out of band (`trust`); and, once a
  directory served another key under the name, that key's fingerprint (`changed_to`), so the
  person is shown as "changed" everywhere until `trust` settles it.
- confirmed.json: the (person, key fingerprint) pairs the lawyer agreed to work with unverified
  (the one-time "Continue? [y/N]" before an upload or a share), so each is asked once.
- totp_used.json: digests of the TOTP codes this client had accepted in the last 90 s and of
  the one-time TOTP recovery codes it spent; the server takes each once and answers a reused
  one with its generic refusal.
- cases/: per case, the membership log, usernames and our sealed key grants as last verified,
  so `case list` need not fetch them again while the server reports the same log head; and
  (`<case>.files.json`, not a cache) the highest verified version of every file seen and
  whether its deletion was seen, so a server that rolls a file back or hides it is caught.
- case_heads.json / own_entries.json: per case, the last membership entry this client verified
  and the last one it appended itself (seq, entry hash); a log without them is refused.
- revocation_scan.json: where the revocation scan of the audit log stands (one position for
  every case: the leaf it reached, the frontier there, and each case tag's membership entry
  hashes seen), and the pinned `first_v2` (client.revocation).
- transfers/: resume state of interrupted uploads (sealed under the identity's local-state key,
  in files named by a keyed hash: a thief learns neither the file's name, nor its exact size,
  nor its SHA-256) and the encrypted bytes of interrupted transfers (no key material).
The audit log's pinned checkpoint and receipts live in the same folder, kept by client.auditlog.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from client.errors import KeystoreError

HOME_ENV = "CASEVAULT_HOME"
DIR_MODE = 0o700
FILE_MODE = 0o600

_PROFILE = "profile.json"
_SESSION = "session.json"
_PINS = "pins.json"
_CONFIRMED = "confirmed.json"
_CASE_HEADS = "case_heads.json"
_OWN_ENTRIES = "own_entries.json"
_SCAN = "revocation_scan.json"
_TOTP_USED = "totp_used.json"
# A code matches for its own 30 s step and one step either side, so at most 90 s after it is
# first valid; after that the server refuses it anyway and there is nothing to remember.
TOTP_CODE_LIFETIME = 90
_TRANSFERS = "transfers"
_CASES = "cases"


def default_home() -> Path:
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("casevault", appauthor=False))


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Temp file in the same folder, fsync, rename over the target, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))


@dataclass(frozen=True)
class Profile:
    server: str
    username: str
    user_id: str
    kdf: dict[str, Any]  # {"salt": hex, "ops": int, "mem": int}
    wrapped_identity: str  # b64 blob produced by client.crypto (under kek)
    identity_record: dict[str, str]  # our own self-signed public record

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "username": self.username,
            "user_id": self.user_id,
            "kdf": self.kdf,
            "wrapped_identity": self.wrapped_identity,
            "identity_record": self.identity_record,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Profile:
        try:
            return cls(
                server=str(obj["server"]),
                username=str(obj["username"]),
                user_id=str(obj["user_id"]),
                kdf=dict(obj["kdf"]),
                wrapped_identity=str(obj["wrapped_identity"]),
                identity_record=dict(obj["identity_record"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreError("the local profile is damaged; log in again") from exc


@dataclass(frozen=True)
class Pin:
    username: str
    user_id: str
    fingerprint: str  # hex SHA-256 of the identity record
    record: dict[str, str]  # the signed identity record as first seen
    first_seen: int
    verified: bool
    changed_to: str | None = None  # fingerprint of a different key a directory served since

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "username": self.username,
            "user_id": self.user_id,
            "fingerprint": self.fingerprint,
            "record": self.record,
            "first_seen": self.first_seen,
            "verified": self.verified,
        }
        if self.changed_to is not None:
            obj["changed_to"] = self.changed_to
        return obj

    @classmethod
    def from_json(cls, obj: Any) -> Pin:
        try:
            return cls(
                username=str(obj["username"]),
                user_id=str(obj["user_id"]),
                fingerprint=str(obj["fingerprint"]),
                record=dict(obj["record"]),
                first_seen=int(obj["first_seen"]),
                verified=bool(obj["verified"]),
                changed_to=(str(obj["changed_to"]) if obj.get("changed_to") is not None
                            else None),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreError("the pinned keys file is damaged") from exc


class Keystore:
    """The client's folder. Creates it 0700 on first use and tightens a looser one."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()

    # ------------------------------------------------------------ basics

    def ensure(self) -> Path:
        self.home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if self.home.stat().st_mode & 0o077:
            os.chmod(self.home, DIR_MODE)
        return self.home

    def path(self, name: str) -> Path:
        return self.ensure() / name

    def _read_json(self, name: str) -> Any | None:
        path = self.home / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeystoreError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            return json.loads(data)
        except ValueError as exc:
            raise KeystoreError(f"{path} is damaged") from exc

    def _write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path(name), obj)

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.home / name).unlink()

    # ------------------------------------------------------------ profile and session

    def load_profile(self) -> Profile | None:
        obj = self._read_json(_PROFILE)
        return None if obj is None else Profile.from_json(obj)

    def save_profile(self, profile: Profile) -> None:
        self._write_json(_PROFILE, profile.to_json())

    def load_session(self) -> str | None:
        obj = self._read_json(_SESSION)
        if not isinstance(obj, dict) or not isinstance(obj.get("token"), str):
            return None
        return obj["token"]

    def save_session(self, token: str) -> None:
        self._write_json(_SESSION, {"token": token, "saved_at": int(time.time())})

    def clear_session(self) -> None:
        self._remove(_SESSION)

    # ------------------------------------------------------------ pinned keys

    def pins(self) -> dict[str, Pin]:
        obj = self._read_json(_PINS) or {}
        if not isinstance(obj, dict):
            raise KeystoreError("the pinned keys file is damaged")
        return {name: Pin.from_json(value) for name, value in obj.items()}

    def pin(self, username: str) -> Pin | None:
        return self.pins().get(username)

    def pin_by_user_id(self, user_id: str) -> Pin | None:
        for pin in self.pins().values():
            if pin.user_id == user_id:
                return pin
        return None

    def save_pin(self, pin: Pin) -> None:
        pins = self.pins()
        pins[pin.username] = pin
        self._write_json(_PINS, {name: p.to_json() for name, p in sorted(pins.items())})

    # ------------------------------------------------------------ unverified, but confirmed

    def is_confirmed(self, username: str, fingerprint: str) -> bool:
        obj = self._read_json(_CONFIRMED) or {}
        return isinstance(obj, dict) and fingerprint in (obj.get(username) or [])

    def remember_confirmed(self, username: str, fingerprint: str) -> None:
        obj = self._read_json(_CONFIRMED) or {}
        if not isinstance(obj, dict):
            obj = {}
        known = [f for f in (obj.get(username) or []) if isinstance(f, str)]
        if fingerprint not in known:
            obj[username] = [*known, fingerprint]
            self._write_json(_CONFIRMED, obj)

    # ------------------------------------------------------------ TOTP codes used here

    @staticmethod
    def _code_digest(server: str, username: str, code: str) -> str:
        # Only a digest is kept: a used code is worthless, but it need not sit on disk either.
        # Dashes and case do not make a one-time recovery code another code.
        code = code.replace("-", "").upper()
        return hashlib.sha256(f"{server}\x00{username}\x00{code}".encode()).hexdigest()

    def remember_totp_code(self, server: str, username: str, code: str, *,
                           one_time: bool = False, now: int | None = None) -> None:
        """Note a code the server accepted, so reusing it gets a clear message, not a 401.
        A 6-digit code is remembered while it could still match; a one-time recovery code
        for good."""
        now = int(time.time()) if now is None else now
        obj = self._read_json(_TOTP_USED)
        used = obj if isinstance(obj, dict) else {}
        used = {h: t for h, t in used.items() if t is None or (isinstance(t, int) and t > now)}
        used[self._code_digest(server, username, code)] = (
            None if one_time else now + TOTP_CODE_LIFETIME)
        self._write_json(_TOTP_USED, used)

    def totp_code_used(self, server: str, username: str, code: str,
                       now: int | None = None) -> bool:
        now = int(time.time()) if now is None else now
        obj = self._read_json(_TOTP_USED)
        if not isinstance(obj, dict):
            return False
        digest = self._code_digest(server, username, code)
        if digest not in obj:
            return False
        until = obj[digest]
        return until is None or (isinstance(until, int) and until > now)

    # ------------------------------------------------------------ membership heads seen

    def load_case_head(self, case_id: str) -> tuple[int, str] | None:
        """(seq, entry hash) of the last membership entry this client verified for a case."""
        obj = self._read_json(_CASE_HEADS) or {}
        head = obj.get(case_id) if isinstance(obj, dict) else None
        if not isinstance(head, dict):
            return None
        try:
            return int(head["seq"]), str(head["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreError("the membership heads file is damaged") from exc

    def save_case_head(self, case_id: str, seq: int, entry_hash: str) -> None:
        obj = self._read_json(_CASE_HEADS) or {}
        if not isinstance(obj, dict):
            obj = {}
        obj[case_id] = {"seq": seq, "hash": entry_hash}
        self._write_json(_CASE_HEADS, obj)

    def load_own_entry(self, case_id: str) -> tuple[int, str] | None:
        """(seq, entry hash) of the last membership entry this client appended to a case."""
        obj = self._read_json(_OWN_ENTRIES) or {}
        head = obj.get(case_id) if isinstance(obj, dict) else None
        if head is None:
            return None
        try:
            return int(head["seq"]), str(head["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreError("the file of own membership entries is damaged") from exc

    def save_own_entry(self, case_id: str, seq: int, entry_hash: str) -> None:
        """Remember an entry the server accepted from us: it must be in every later log.
        Kept apart from the head last seen, and only ever moved forward."""
        obj = self._read_json(_OWN_ENTRIES) or {}
        if not isinstance(obj, dict):
            raise KeystoreError("the file of own membership entries is damaged")
        old = self.load_own_entry(case_id)
        if old is None or seq > old[0]:
            obj[case_id] = {"seq": seq, "hash": entry_hash}
            self._write_json(_OWN_ENTRIES, obj)

    # ------------------------------------------------------------ revocation scan

    def load_scan_state(self) -> dict[str, Any] | None:
        """The revocation scan's state (client.revocation checks its shape)."""
        return self._read_json(_SCAN)

    def save_scan_state(self, state: dict[str, Any]) -> None:
        self._write_json(_SCAN, state)

    # ------------------------------------------------------------ verified case records

    def _case_file(self, case_id: str) -> str:
        if len(case_id) != 32 or any(ch not in "0123456789abcdef" for ch in case_id):
            raise KeystoreError("invalid case id")
        return f"{_CASES}/{case_id}.json"

    def load_case_cache(self, case_id: str) -> dict[str, Any] | None:
        """The signed membership log, usernames and our sealed grants of a case, as last
        verified (`seq`/`head` name the log's last entry). Nothing here opens without the
        passphrase: grants are sealed to our key, entries are public signed records."""
        obj = self._read_json(self._case_file(case_id))
        if not isinstance(obj, dict):
            return None
        if not (isinstance(obj.get("entries"), list) and isinstance(obj.get("usernames"), dict)
                and isinstance(obj.get("grants"), list) and isinstance(obj.get("seq"), int)
                and isinstance(obj.get("head"), str)):
            return None  # an unreadable cache is only a cache: fetch again
        return obj

    def save_case_cache(self, case_id: str, obj: dict[str, Any]) -> None:
        path = self.ensure() / self._case_file(case_id)
        path.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        atomic_write_json(path, obj)

    def drop_case_cache(self, case_id: str) -> None:
        self._remove(self._case_file(case_id))

    # ------------------------------------------------------------ file versions seen

    def _files_seen_path(self, case_id: str) -> Path:
        path = self.ensure() / self._case_file(case_id).replace(".json", ".files.json")
        path.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        return path

    def files_seen(self, case_id: str) -> dict[str, dict[str, Any]]:
        """file id -> {"version": highest verified version, "deleted": tombstone verified}."""
        path = self._files_seen_path(case_id)
        try:
            obj = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Unlike the case cache this is evidence: forgetting it would let a rollback pass.
            raise KeystoreError(f"{path} is damaged") from exc
        if not isinstance(obj, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("version"), int)
                and isinstance(v.get("deleted"), bool) for v in obj.values()):
            raise KeystoreError(f"{path} is damaged")
        return obj

    def record_files_seen(self, case_id: str, seen: dict[str, tuple[int, bool]]) -> None:
        """Merge verified (version, deleted) facts; versions only rise, deletions stay."""
        if not seen:
            return
        path = self._files_seen_path(case_id)
        # A lock around read-merge-write, so two commands of the same lawyer never lose a fact.
        with open(path.with_suffix(".lock"), "a") as lock:
            os.fchmod(lock.fileno(), FILE_MODE)
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = self.files_seen(case_id)
            changed = False
            for file_id, (version, deleted) in seen.items():
                old = known.get(file_id, {"version": 0, "deleted": False})
                new = {"version": max(old["version"], version),
                       "deleted": old["deleted"] or deleted}
                if new != old:
                    known[file_id], changed = new, True
            if changed:
                atomic_write_json(path, known)

    # ------------------------------------------------------------ transfer state

    def transfer_dir(self) -> Path:
        path = self.ensure() / _TRANSFERS
        path.mkdir(mode=DIR_MODE, exist_ok=True)
        return path

    def transfer_path(self, name: str, ext: str) -> Path:
        """Where a transfer keeps its bytes (an encrypted blob, never plaintext) or, sealed,
        its resume state (client.transfers)."""
        if not ext.isalnum():
            raise KeystoreError("invalid transfer file extension")
        return self.transfer_dir() / f"{_safe_name(name)}.{ext}"


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _safe_name(key: str) -> str:
    # Transfer keys are built from a prefix, hex ids and digests; anything else would be a bug.
    if not key or len(key) > 200 or any(ch not in _KEY_CHARS for ch in key):
        raise KeystoreError("invalid transfer key")
    return key
