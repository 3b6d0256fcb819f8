"""The state every operation receives: the server's API, the local keystore, the unlocked
identity, the pinned keys of colleagues, the audit log verifier, a clock and a progress bar.

Operations (client.accounts, client.cases, client.colleagues, client.files) take a Session and
nothing else, so they never reach back into a face (the CLI, the Vault facade, later the UI);
a test hands them a Session over an in-memory API to run one without a server.

How the identity is unlocked: the private identity is stored in CASEVAULT_HOME only wrapped
under `kek`. The first operation that needs it derives `kek` again from the passphrase
(Argon2id with the account's parameters, kept locally; about a second at MODERATE) and unwraps
it in memory. Neither the kek nor the unwrapped identity is ever written to disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from client import crypto
from client.api import Api, check_server_url
from client.auditlog import AuditLog
from client.errors import NotLoggedIn, VaultError
from client.keystore import Keystore, Profile
from client.trust import TrustStore
from vault.protocol.encoding import EncodingError, b64d

PassphraseSource = str | Callable[[], str] | None
# `bar(label, total)` -> a context manager whose `advance(n)` reports bytes done.
ProgressFactory = Callable[[str, int], AbstractContextManager[Any]]


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class Session:
    """One lawyer's client state. Everything is built on first use: a command that never
    needs the identity never asks for the passphrase, one that never calls the server never
    opens a connection.

    `api`, `identity` and `log` may be given ready-made (an in-memory API, an identity, a log
    verifier); otherwise they come from the keystore's saved session and profile.
    """

    def __init__(
        self,
        keystore: Keystore,
        *,
        server: str | None = None,
        passphrase: PassphraseSource = None,
        progress: ProgressFactory | None = None,
        transport: Any = None,
        api: Api | None = None,
        identity: crypto.Identity | None = None,
        log: Callable[[], AuditLog] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keystore = keystore
        self._server_override = check_server_url(server) if server else None
        self._passphrase = passphrase
        self._progress = progress
        self._transport = transport
        self._api = api
        self._identity = identity
        self._log = log
        self._clock = clock

    # ------------------------------------------------------------ server and API

    def server(self, profile: Profile | None = None) -> str:
        if self._server_override:
            return self._server_override
        profile = profile or self.keystore.load_profile()
        if profile is None:
            raise VaultError("no server known; pass --server URL or set CASEVAULT_SERVER")
        return profile.server

    def anonymous_api(self, server: str) -> Api:
        """A client without a session, for registration, login and recovery."""
        return Api(server, transport=self._transport)

    def token_api(self, server: str, token: str) -> Api:
        return Api(server, token, transport=self._transport)

    @property
    def api(self) -> Api:
        """The client of the saved session (a refused token raises SessionExpired)."""
        if self._api is None:
            profile = self.profile()
            token = self.keystore.load_session()
            if token is None:
                raise NotLoggedIn()
            self._api = self.token_api(profile.server, token)
        return self._api

    def signed_in(self, identity: crypto.Identity | None) -> None:
        """A new session was saved (login, activation, recovery): forget the old client."""
        self._api, self._identity = None, identity

    # ------------------------------------------------------------ who we are

    def profile(self) -> Profile:
        profile = self.keystore.load_profile()
        if profile is None:
            raise NotLoggedIn()
        return profile

    def identity(self) -> crypto.Identity:
        """The private identity, unlocked with the passphrase once per session."""
        if self._identity is None:
            profile = self.profile()
            self._identity = unlock_identity(profile, self._get_passphrase())
        return self._identity

    def _get_passphrase(self) -> str:
        source = self._passphrase
        if source is None:
            raise VaultError("a passphrase is needed to unlock your keys")
        return source() if callable(source) else source

    # ------------------------------------------------------------ keys and log of others

    @property
    def trust(self) -> TrustStore:
        """Colleagues' keys: pinned on first use, a changed key is a hard stop."""
        return TrustStore(self.keystore, lambda: self.api)

    def audit_log(self) -> AuditLog:
        """The verifier of the server's audit log over this session (client.auditlog)."""
        if self._log is not None:
            return self._log()
        return AuditLog(self.keystore.ensure(),
                        lambda path, params: self.api.get(path, **params))

    # ------------------------------------------------------------ time and progress

    def now(self) -> int:
        return int(self._clock())

    def bar(self, label: str, total: int) -> AbstractContextManager[Any]:
        return self._progress(label, total) if self._progress else _NoBar()


def kdf_params(obj: Any) -> crypto.KdfParams:
    """KDF parameters from JSON; the crypto layer refuses any below the floor."""
    try:
        salt = b64d(obj["salt"])
        ops, mem = obj["ops"], obj["mem"]
    except (KeyError, TypeError, EncodingError) as exc:
        raise crypto.IntegrityError("key-derivation parameters") from exc
    crypto.check_kdf_params(ops, mem)
    return crypto.KdfParams(salt, ops, mem)


def unlock_identity(profile: Profile, passphrase: str) -> crypto.Identity:
    keys = crypto.derive_account_keys(passphrase, kdf_params(profile.kdf))
    try:
        return crypto.unwrap_identity(
            b64d(profile.wrapped_identity), keys.kek, profile.user_id, crypto.PURPOSE_KEK)
    except crypto.IntegrityError as exc:
        raise VaultError("wrong passphrase") from exc
