"""High-level client operations, usable from Python scripts as from the `casevault` command.

    from client.vault import Vault
    v = Vault(home="~/cv", passphrase="...")   # passphrase: str or a callable asked on demand
    v.login("alice", "...", "123456", server="https://vault.example")
    case_id = v.create_case("R v Smith")
    v.put(case_id, [Path("statement.pdf")])

How a command gets the identity: the private identity is stored in CASEVAULT_HOME only wrapped
under `kek`. Each operation that needs it derives `kek` again from the passphrase (Argon2id with
the account's parameters, kept locally; about a second at MODERATE) and unwraps it in memory.
Neither the kek nor the unwrapped identity is ever written to disk.

Trust: colleagues' keys are pinned on first use (client.trust) and the membership log of every
case is replayed and verified here before anything is shared, uploaded or decrypted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from client import crypto
from client.api import Api, NotAuthenticated, check_server_url
from client.keystore import Keystore, Profile
from client.vault_cases import CaseOps
from client.vault_errors import (
    CodeAlreadyUsed,
    FingerprintMismatch,
    KeyChanged,
    NotLoggedIn,
    ServerCopyDamaged,
    UnknownUser,
    VaultError,
)
from client.vault_files import FileOps
from client.vault_trust import TrustStore
from vault.protocol.encoding import EncodingError, b64d, b64e
from vault.protocol.ids import new_id
from vault.protocol.records import RecordError, normalize_safety_number, verify_identity_record

PassphraseSource = str | Callable[[], str] | None


@dataclass
class Enrolment:
    """A registered but not yet activated account, returned by `Vault.register`."""

    username: str
    user_id: str
    server: str
    totp_uri: str
    recovery_code: str
    totp_recovery_codes: list[str]
    _auth_key: bytes = field(repr=False)
    _profile: Profile = field(repr=False)


def _now() -> int:
    return int(time.time())


class Vault:
    """One lawyer's view of the vault: local state in `home`, a server, a passphrase source."""

    def __init__(
        self,
        home: str | None = None,
        *,
        server: str | None = None,
        passphrase: PassphraseSource = None,
        progress: Callable[[str, int], Any] | None = None,
        transport: Any = None,
    ) -> None:
        self.keystore = Keystore(home)
        self._server_override = check_server_url(server) if server else None
        self._passphrase_source = passphrase
        self._progress = progress
        self._transport = transport
        self._identity: crypto.Identity | None = None
        self._api: Api | None = None

    # ------------------------------------------------------------ plumbing

    def _server(self, profile: Profile | None = None) -> str:
        if self._server_override:
            return self._server_override
        profile = profile or self.keystore.load_profile()
        if profile is None:
            raise VaultError("no server known; pass --server URL or set CASEVAULT_SERVER")
        return profile.server

    def _anon_api(self, server: str) -> Api:
        return Api(server, transport=self._transport)

    def _profile(self) -> Profile:
        profile = self.keystore.load_profile()
        if profile is None:
            raise NotLoggedIn()
        return profile

    @property
    def api(self) -> Api:
        """An authenticated client for the saved session."""
        if self._api is None:
            profile = self._profile()
            token = self.keystore.load_session()
            if token is None:
                raise NotLoggedIn()
            self._api = Api(profile.server, token, transport=self._transport)
        return self._api

    def _call(self, fn: Callable[[Api], Any]) -> Any:
        try:
            return fn(self.api)
        except NotAuthenticated as exc:
            raise VaultError("the session expired or was ended; run `casevault login`") from exc

    def _get_passphrase(self) -> str:
        source = self._passphrase_source
        if source is None:
            raise VaultError("a passphrase is needed to unlock your keys")
        return source() if callable(source) else source

    @property
    def me(self) -> Profile:
        return self._profile()

    def identity(self) -> crypto.Identity:
        """Unlock the private identity with the passphrase (cached for this object only)."""
        if self._identity is None:
            profile = self._profile()
            keys = crypto.derive_account_keys(self._get_passphrase(), _kdf(profile.kdf))
            try:
                self._identity = crypto.unwrap_identity(
                    b64d(profile.wrapped_identity), keys.kek, profile.user_id, crypto.PURPOSE_KEK
                )
            except crypto.IntegrityError as exc:
                raise VaultError("wrong passphrase") from exc
        return self._identity

    # ------------------------------------------------------------ accounts

    def register(self, username: str, passphrase: str, *, invite: str | None = None) -> Enrolment:
        """Create the identity and a pending account; show the enrolment, then `activate`."""
        server = self._server()
        params = crypto.new_kdf_params()
        keys = crypto.derive_account_keys(passphrase, params)
        code, secret = crypto.generate_recovery_code()
        rkeys = crypto.recovery_keys(secret)
        identity = crypto.Identity.generate(new_id(), username)
        record = identity.public_record()
        wrapped_kek = crypto.wrap_identity(identity, keys.kek, crypto.PURPOSE_KEK)
        wrapped_rec = crypto.wrap_identity(identity, rkeys.recovery_key, crypto.PURPOSE_RECOVERY)
        kdf = {"salt": b64e(params.salt), "ops": params.ops, "mem": params.mem}
        with self._anon_api(server) as api:
            reply = api.post("/v1/accounts/register", {
                "username": username,
                "kdf": kdf,
                "auth_key": b64e(keys.auth_key),
                "identity": record,
                "identity_wrapped_kek": b64e(wrapped_kek),
                "identity_wrapped_recovery": b64e(wrapped_rec),
                "recovery_auth": b64e(rkeys.recovery_auth_key),
                "invite": invite,
            })
        profile = Profile(server=server, username=username, user_id=identity.user_id, kdf=kdf,
                          wrapped_identity=b64e(wrapped_kek), identity_record=record)
        return Enrolment(
            username=username, user_id=identity.user_id, server=server,
            totp_uri=str(reply["totp_uri"]), recovery_code=code,
            totp_recovery_codes=list(reply.get("recovery_codes", [])),
            _auth_key=keys.auth_key, _profile=profile,
        )

    def activate(self, enrolment: Enrolment, totp_code: str) -> dict[str, Any]:
        """Confirm TOTP; the account becomes active and this client is logged in."""
        with self._anon_api(enrolment.server) as api:
            reply = api.post("/v1/accounts/activate", {
                "username": enrolment.username,
                "auth_key": b64e(enrolment._auth_key),
                "totp": totp_code,
            })
        self.keystore.remember_totp_code(enrolment.server, enrolment.username, totp_code)
        self._check_own_record(reply, enrolment._profile)
        self.keystore.save_profile(enrolment._profile)
        self.keystore.save_session(str(reply["token"]))
        self._api = None
        return self._who(enrolment._profile)

    def login(self, username: str, passphrase: str, totp_code: str, *,
              server: str | None = None) -> dict[str, Any]:
        server = check_server_url(server) if server else self._server()
        self._refuse_used_code(server, username, totp_code)
        with self._anon_api(server) as api:
            pre = api.post("/v1/accounts/prelogin", {"username": username})
            # The floor is checked inside derive_*: a server cannot talk us into weak params.
            keys = crypto.derive_account_keys(passphrase, _kdf(pre))
            reply = api.post("/v1/auth/login", {
                "username": username, "auth_key": b64e(keys.auth_key), "totp": totp_code,
            })
        self.keystore.remember_totp_code(server, username, totp_code,
                                         one_time=not totp_code.isdigit())
        user_id = str(reply["user_id"])
        try:
            identity = crypto.unwrap_identity(
                b64d(reply["identity_wrapped_kek"]), keys.kek, user_id, crypto.PURPOSE_KEK)
        except (crypto.IntegrityError, EncodingError, KeyError) as exc:
            raise crypto.IntegrityError("your identity as sent by the server") from exc
        kdf = {"salt": pre["salt"], "ops": pre["ops"], "mem": pre["mem"]}
        profile = Profile(server=server, username=username, user_id=user_id, kdf=kdf,
                          wrapped_identity=str(reply["identity_wrapped_kek"]),
                          identity_record=identity.public_record())
        self._check_own_record(reply, profile)
        self.keystore.save_profile(profile)
        self.keystore.save_session(str(reply["token"]))
        self._identity, self._api = identity, None
        return self._who(profile)

    def _refuse_used_code(self, server: str, username: str, totp_code: str) -> None:
        """The server takes each TOTP time step once and refuses a reused code with its one
        generic error (no oracle); this client remembers the codes it spent, so it can say
        what is wrong before any attempt is counted against the account."""
        if self.keystore.totp_code_used(server, username, totp_code):
            raise CodeAlreadyUsed(one_time=not totp_code.isdigit())

    def _check_own_record(self, reply: dict[str, Any], profile: Profile) -> None:
        """The directory must publish exactly our own key, or others would seal to another."""
        mine = verify_identity_record(profile.identity_record)
        try:
            served = verify_identity_record(reply.get("identity"))
        except (RecordError, EncodingError, TypeError) as exc:
            raise crypto.IntegrityError("your public key as published by the server") from exc
        if served.fingerprint != mine.fingerprint:
            raise crypto.IntegrityError("your public key as published by the server")

    def logout(self) -> None:
        token = self.keystore.load_session()
        profile = self.keystore.load_profile()
        if token and profile:
            try:
                with Api(profile.server, token, transport=self._transport) as api:
                    api.post("/v1/auth/logout")
            except NotAuthenticated:
                pass  # already ended on the server; forget it here too
        self.keystore.clear_session()
        self._api = None

    def _who(self, profile: Profile) -> dict[str, Any]:
        record = verify_identity_record(profile.identity_record)
        return {"username": profile.username, "user_id": profile.user_id,
                "server": profile.server, "safety_number": record.safety_number}

    def whoami(self) -> dict[str, Any]:
        profile = self._profile()
        me = self._call(lambda api: api.get("/v1/me"))
        if me.get("user_id") != profile.user_id:
            raise VaultError("the session belongs to another account; log in again")
        self._check_own_record(me, profile)
        return self._who(profile)

    def recover(self, username: str, recovery_code: str, new_passphrase: str,
                totp_code: str, *, server: str | None = None) -> dict[str, Any]:
        """Reset the passphrase with the recovery code; TOTP is still required."""
        server = check_server_url(server) if server else self._server()
        rkeys = crypto.recovery_keys(crypto.parse_recovery_code(recovery_code))
        self._refuse_used_code(server, username, totp_code)
        with self._anon_api(server) as api:
            begin = api.post("/v1/accounts/recovery/begin", {
                "username": username, "recovery_auth": b64e(rkeys.recovery_auth_key),
                "totp": totp_code,
            })
        self.keystore.remember_totp_code(server, username, totp_code)
        user_id = str(begin["user_id"])
        try:
            identity = crypto.unwrap_identity(b64d(begin["identity_wrapped_recovery"]),
                                              rkeys.recovery_key, user_id,
                                              crypto.PURPOSE_RECOVERY)
        except (crypto.IntegrityError, EncodingError, KeyError) as exc:
            raise crypto.IntegrityError("your identity as sent by the server") from exc
        params = crypto.new_kdf_params()
        keys = crypto.derive_account_keys(new_passphrase, params)
        wrapped = b64e(crypto.wrap_identity(identity, keys.kek, crypto.PURPOSE_KEK))
        kdf = {"salt": b64e(params.salt), "ops": params.ops, "mem": params.mem}
        profile = Profile(server=server, username=username, user_id=user_id, kdf=kdf,
                          wrapped_identity=wrapped, identity_record=identity.public_record())
        self._check_own_record(begin, profile)
        with Api(server, str(begin["recovery_token"]), transport=self._transport) as api:
            api.post("/v1/accounts/recovery/complete", {
                "kdf": kdf, "auth_key": b64e(keys.auth_key), "identity_wrapped_kek": wrapped,
            })
        # Recovery ends every session; the next login needs a fresh code.
        self.keystore.save_profile(profile)
        self.keystore.clear_session()
        self._identity, self._api = identity, None
        return self._who(profile)

    # ------------------------------------------------------------ keys of other people

    def fingerprint(self, username: str | None = None) -> dict[str, Any]:
        profile = self._profile()
        if username is None or username == profile.username:
            record = verify_identity_record(profile.identity_record)
            return {"username": profile.username, "safety_number": record.safety_number,
                    "fingerprint": record.fingerprint_hex, "verified": True}
        pin = self.keystore.pin(username)
        if pin is None:
            record = self.trust_store.fetch(username)
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
        record = self.trust_store.fetch(username)
        if record.safety_number != wanted:
            raise FingerprintMismatch(username)
        self.trust_store.pin(record, verified=True, replace=True)
        return {"username": username, "safety_number": record.safety_number, "verified": True}

    @property
    def trust_store(self) -> TrustStore:
        return TrustStore(self.keystore, lambda: self.api)

    # ------------------------------------------------------------ cases and files

    def _cases(self) -> CaseOps:
        return CaseOps(self)

    def _files(self) -> FileOps:
        return FileOps(self._cases(), self._progress)

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

    def audit(self, case_id: str) -> list[dict[str, Any]]:
        return self._cases().audit(case_id)

    def put(self, case_id: str, paths: list[Any], *,
            file_id: str | None = None) -> list[dict[str, Any]]:
        """Upload files; with `file_id`, one path becomes the next version of that file."""
        return self._files().put(case_id, paths, file_id=file_id)

    def ls(self, case_id: str) -> list[dict[str, Any]]:
        return self._files().ls(case_id)

    def get(self, case_id: str, file_id: str, *, output: Any = None,
            version: int | None = None) -> dict[str, Any]:
        return self._files().get(case_id, file_id, output=output, version=version)

    def rm(self, case_id: str, file_id: str) -> None:
        self._files().rm(case_id, file_id)


def _kdf(obj: Any) -> crypto.KdfParams:
    """KDF parameters from JSON; the crypto layer refuses any below the floor."""
    try:
        salt = b64d(obj["salt"])
        ops, mem = obj["ops"], obj["mem"]
    except (KeyError, TypeError, EncodingError) as exc:
        raise crypto.IntegrityError("key-derivation parameters") from exc
    crypto.check_kdf_params(ops, mem)
    return crypto.KdfParams(salt, ops, mem)


__all__ = ["CodeAlreadyUsed", "Enrolment", "FingerprintMismatch", "KeyChanged", "NotLoggedIn",
           "ServerCopyDamaged", "UnknownUser", "Vault", "VaultError"]
