"""Resume state of interrupted uploads in CASEVAULT_HOME/transfers/, sealed under the identity.

An upload's state names the file, its exact size and its plaintext SHA-256, which would tell a
thief of the laptop what the lawyer was sending. It is therefore sealed with the identity's
local-state key (client.crypto.LocalStateKey) into `<name>.state`, where `name` is a keyed hash
of the transfer's key (the file's path, size, mtime and case): without the passphrase no one can
open it, nor confirm a guessed path against a name. The encrypted blob beside it takes the same
name. A sealed state is padded to a multiple of 1 KiB, so its length does not tell the length
of the file name. What stays visible: that an upload is pending, its blob's padded size
(Padmé), and the files' times.

State that older clients left in clear (`<key>.json`) is sealed on first sight
(`seal_plaintext`): it moves to the name this client gives the same transfer, so its resume
goes on where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from client.crypto import IntegrityError, LocalStateKey
from client.errors import KeystoreError
from client.keystore import Keystore, atomic_write_bytes

STATE_EXT = "state"
_LEGACY_EXT = "json"
_PURPOSE = "transfer"
_PAD = 1024


class TransferStates:
    """The sealed resume states of one identity's uploads, over a keystore."""

    def __init__(self, keystore: Keystore, sealer: LocalStateKey) -> None:
        self._keystore = keystore
        self._sealer = sealer

    def name(self, key: str) -> str:
        """The file name of the transfer `key` (a keyed hash: the key never reaches the disk)."""
        return self._sealer.name(key)

    def load(self, name: str) -> dict[str, Any] | None:
        """The state saved under `name`, or None: also when it does not open, for it is only
        resume state (another identity's, or damaged), and the upload then starts afresh."""
        path = self._keystore.transfer_path(name, STATE_EXT)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeystoreError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            obj = json.loads(self._sealer.open(_PURPOSE, name, sealed))
        except (IntegrityError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

    def save(self, name: str, state: dict[str, Any]) -> None:
        data = json.dumps(state, sort_keys=True).encode("utf-8")
        data += b" " * (-len(data) % _PAD)  # JSON ignores trailing blanks
        atomic_write_bytes(self._keystore.transfer_path(name, STATE_EXT),
                           self._sealer.seal(_PURPOSE, name, data))

    def clear(self, name: str) -> None:
        self._keystore.transfer_path(name, STATE_EXT).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, state) of every saved state that opens under this identity."""
        for path in sorted(self._keystore.transfer_dir().glob(f"*.{STATE_EXT}")):
            state = self.load(path.stem)
            if state is not None:
                yield path.stem, state

    def seal_plaintext(self) -> int:
        """Seal every state an older client left in clear, and delete the clear copy; its blob
        follows it to the new name. Unreadable old state is only deleted. Returns how many."""
        sealed = 0
        for old in sorted(self._keystore.transfer_dir().glob(f"*.{_LEGACY_EXT}")):
            state = None
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(old.read_bytes())
            if isinstance(state, dict):
                with contextlib.suppress(KeystoreError):  # a name no client of ours wrote
                    self._keystore.transfer_path(old.stem, "blob")
                    name = self.name(old.stem)
                    self.save(name, state)
                    blob = old.with_suffix(".blob")
                    if blob.exists():
                        os.replace(blob, self._keystore.transfer_path(name, "blob"))
                    sealed += 1
            old.unlink(missing_ok=True)
        return sealed
