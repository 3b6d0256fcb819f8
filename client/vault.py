"""One lawyer's vault as one object, for Python scripts as for the `casevault` command:

    from client.vault import Vault
    v = Vault(home="~/cv", passphrase="...")   # passphrase: str or a callable asked on demand
    v.login("alice", "...", "123456", server="https://vault.example")
    case_id = v.create_case("R v Smith")
    v.put(case_id, [Path("statement.pdf")])

A face, not a layer: it builds one Session (client.session) and calls the operations
(client.accounts, client.cases, client.colleagues, client.files) with it. The operations never
import this module, so another face (the graphical client) can drive them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import crypto
from client.accounts import Accounts, Enrolment
from client.api import Api
from client.case_audit import CaseAudit
from client.cases import CaseOps
from client.colleagues import Colleagues
from client.custody import Custody
from client.errors import (
    CodeAlreadyUsed,
    FingerprintMismatch,
    KeyChanged,
    NotLoggedIn,
    ServerCopyDamaged,
    UnknownUser,
    VaultError,
)
from client.files.bulk import BulkDownloads, BulkResult
from client.files.delete import Deletions
from client.files.download import Downloads
from client.files.folders import SkipNotice, folder_arg, in_folder, plan_upload
from client.files.listing import CaseFiles
from client.files.upload import Uploads
from client.holds import Holds
from client.keystore import Keystore, Profile
from client.session import ConfirmHook, PassphraseSource, ProgressFactory, Session
from client.trust import TrustStore


class Vault:
    """One lawyer's view of the vault: local state in `home`, a server, a passphrase source."""

    def __init__(
        self,
        home: str | None = None,
        *,
        server: str | None = None,
        passphrase: PassphraseSource = None,
        progress: ProgressFactory | Callable[[str, int], Any] | None = None,
        transport: Any = None,
        confirm: ConfirmHook | None = None,
    ) -> None:
        self.keystore = Keystore(home)
        self.session = Session(self.keystore, server=server, passphrase=passphrase,
                               progress=progress, transport=transport, confirm=confirm)

    # ------------------------------------------------------------ the session

    @property
    def api(self) -> Api:
        return self.session.api

    @property
    def me(self) -> Profile:
        return self.session.profile()

    def identity(self) -> crypto.Identity:
        return self.session.identity()

    @property
    def trust_store(self) -> TrustStore:
        return self.session.trust

    def _cases(self) -> CaseOps:
        return CaseOps(self.session)

    # ------------------------------------------------------------ accounts

    def register(self, username: str, passphrase: str, *, invite: str | None = None) -> Enrolment:
        """Create the identity and a pending account; show the enrolment, then `activate`."""
        return Accounts(self.session).register(username, passphrase, invite=invite)

    def activate(self, enrolment: Enrolment, totp_code: str) -> dict[str, Any]:
        """Confirm TOTP; the account becomes active and this client is logged in."""
        return Accounts(self.session).activate(enrolment, totp_code)

    def login(self, username: str, passphrase: str, totp_code: str, *,
              server: str | None = None) -> dict[str, Any]:
        return Accounts(self.session).login(username, passphrase, totp_code, server=server)

    def logout(self) -> None:
        Accounts(self.session).logout()

    def whoami(self) -> dict[str, Any]:
        return Accounts(self.session).whoami()

    def recover(self, username: str, recovery_code: str, new_passphrase: str,
                totp_code: str, *, server: str | None = None) -> dict[str, Any]:
        """Reset the passphrase with the recovery code; TOTP is still required."""
        return Accounts(self.session).recover(username, recovery_code, new_passphrase,
                                              totp_code, server=server)

    # ------------------------------------------------------------ keys of other people

    def fingerprint(self, username: str | None = None) -> dict[str, Any]:
        return Colleagues(self.session).fingerprint(username)

    def trust(self, username: str, safety_number: str) -> dict[str, Any]:
        """Pin the directory's current key of `username` as verified, if the number matches."""
        return Colleagues(self.session).trust(username, safety_number)

    # ------------------------------------------------------------ cases

    def create_case(self, name: str, description: str = "") -> str:
        return self._cases().create(name, description)

    def list_cases(self) -> list[dict[str, Any]]:
        return self._cases().list()

    def members(self, case_id: str) -> list[dict[str, Any]]:
        return self._cases().members(case_id)

    def share(self, case_id: str, username: str, *, role: str = "editor",
              fingerprint: str | None = None) -> dict[str, Any]:
        return self._cases().share(case_id, username, role=role, fingerprint=fingerprint)

    def revoke(self, case_id: str, username: str) -> dict[str, Any]:
        return self._cases().revoke(case_id, username)

    def set_role(self, case_id: str, username: str, role: str) -> dict[str, Any]:
        return self._cases().set_role(case_id, username, role)

    def audit(self, case_id: str, *, with_paths: bool = False) -> list[dict[str, Any]]:
        """The verified audit trail; `with_paths` names files by their decrypted paths."""
        return CaseAudit(self.session).audit(case_id, with_paths=with_paths)

    def custody(self, case_id: str, file_id: str) -> dict[str, Any]:
        """A file's verified chain of custody: intake records, versions, audit events."""
        return Custody(self.session).show(case_id, file_id)

    def hold(self, case_id: str, reason: str) -> dict[str, Any]:
        """Place a legal hold (owners): a signed entry of the case's membership log."""
        return Holds(self.session).place(case_id, reason)

    def release_hold(self, case_id: str) -> dict[str, Any]:
        return Holds(self.session).release(case_id)

    def hold_status(self, case_id: str) -> dict[str, Any] | None:
        """The hold standing on the case by this client's own replay of the log, or None."""
        return Holds(self.session).status(case_id)

    def verify_log(self) -> dict[str, Any]:
        """Advance the pinned checkpoint through a consistency proof, re-prove every receipt."""
        return self._cases().verify_log()

    # ------------------------------------------------------------ files

    def put(self, case_id: str, paths: list[Any], *, file_id: str | None = None,
            to: str | None = None, on_skip: SkipNotice | None = None, source: str = "",
            note: str = "") -> list[dict[str, Any]]:
        """Upload files and directories (recursively, as `cp -r`) into folder `to` (the root
        by default); with `file_id`, one file becomes the next version of that file. Each
        file's intake record (chain of custody) names `source` and `note`."""
        if file_id is not None and (len(paths) != 1 or Path(paths[0]).is_dir()):
            raise VaultError("a new version takes exactly one file")
        planned = plan_upload([Path(p) for p in paths], to=to, on_skip=on_skip)
        # A new version stays in its file's folder unless --to names another.
        places: list[str | None] = [p.case_path for p in planned]
        if file_id is not None and to is None:
            places = [None]
        return Uploads(self.session).put(case_id, [p.local for p in planned], file_id=file_id,
                                         case_paths=places, source=source, note=note)

    def ls(self, case_id: str, folder: str | None = None) -> list[dict[str, Any]]:
        """The latest version of every file, or of those inside `folder`, sorted by path."""
        return in_folder(CaseFiles(self.session).ls(case_id), folder_arg(folder, "FOLDER"))

    def get(self, case_id: str, file_id: str, *, output: Any = None,
            version: int | None = None) -> dict[str, Any]:
        return Downloads(self.session).get(case_id, file_id, output=output, version=version)

    def get_many(self, case_id: str, *, output: Any, file_ids: list[str] | None = None,
                 folder: str | None = None) -> BulkResult:
        """Several files (`file_ids`), one folder, or the whole case into directory `output`,
        keeping folders; see client.files.bulk for what stops it and what is reported."""
        return BulkDownloads(self.session).get_many(case_id, output=Path(output),
                                                    file_ids=file_ids, folder=folder)

    def rm(self, case_id: str, file_id: str) -> None:
        Deletions(self.session).delete(case_id, file_id)


__all__ = ["CodeAlreadyUsed", "Enrolment", "FingerprintMismatch", "KeyChanged", "NotLoggedIn",
           "ServerCopyDamaged", "UnknownUser", "Vault", "VaultError"]
