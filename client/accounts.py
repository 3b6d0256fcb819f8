"""Accounts: register and activate, log in and out, recover with the recovery code.

Registration creates the identity on this machine; the server gets the public record and the
private identity only wrapped (under `kek` and under the recovery key). Login re-derives the
keys from the passphrase with the account's KDF parameters, whose floor a server cannot lower.
After each of these the server must publish exactly this client's own key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client import crypto
from client.api import check_server_url
from client.errors import CodeAlreadyUsed, NotAuthenticated, VaultError
from client.keystore import Profile
from client.session import Session, kdf_params
from vault.protocol.encoding import EncodingError, b64d, b64e
from vault.protocol.ids import new_id
from vault.protocol.records import RecordError, verify_identity_record


@dataclass
class Enrolment:
    """A registered but not yet activated account, returned by `register`."""

    username: str
    user_id: str
    server: str
    totp_uri: str
    recovery_code: str
    totp_recovery_codes: list[str]
    _auth_key: bytes = field(repr=False)
    _profile: Profile = field(repr=False)


class Accounts:
    """The account operations, over a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def register(self, username: str, passphrase: str, *, invite: str | None = None) -> Enrolment:
        """Create the identity and a pending account; show the enrolment, then `activate`."""
        server = self.session.server()
        params = crypto.new_kdf_params()
        keys = crypto.derive_account_keys(passphrase, params)
        code, secret = crypto.generate_recovery_code()
        rkeys = crypto.recovery_keys(secret)
        identity = crypto.Identity.generate(new_id(), username)
        record = identity.public_record()
        wrapped_kek = crypto.wrap_identity(identity, keys.kek, crypto.PURPOSE_KEK)
        wrapped_rec = crypto.wrap_identity(identity, rkeys.recovery_key, crypto.PURPOSE_RECOVERY)
        kdf = {"salt": b64e(params.salt), "ops": params.ops, "mem": params.mem}
        with self.session.anonymous_api(server) as api:
            reply = api.register({
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
        with self.session.anonymous_api(enrolment.server) as api:
            reply = api.activate({
                "username": enrolment.username,
                "auth_key": b64e(enrolment._auth_key),
                "totp": totp_code,
            })
        self.session.keystore.remember_totp_code(enrolment.server, enrolment.username, totp_code)
        self._check_own_record(reply, enrolment._profile)
        self.session.keystore.save_profile(enrolment._profile)
        self.session.keystore.save_session(str(reply["token"]))
        self.session.signed_in(None)
        return self._who(enrolment._profile)

    def login(self, username: str, passphrase: str, totp_code: str, *,
              server: str | None = None) -> dict[str, Any]:
        server = check_server_url(server) if server else self.session.server()
        self._refuse_used_code(server, username, totp_code)
        with self.session.anonymous_api(server) as api:
            pre = api.prelogin(username)
            # The floor is checked inside derive_*: a server cannot talk us into weak params.
            keys = crypto.derive_account_keys(passphrase, kdf_params(pre))
            reply = api.login({
                "username": username, "auth_key": b64e(keys.auth_key), "totp": totp_code,
            })
        self.session.keystore.remember_totp_code(server, username, totp_code,
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
        self.session.keystore.save_profile(profile)
        self.session.keystore.save_session(str(reply["token"]))
        self.session.signed_in(identity)
        return self._who(profile)

    def _refuse_used_code(self, server: str, username: str, totp_code: str) -> None:
        """The server takes each TOTP time step once and refuses a reused code with its one
        generic error (no oracle); this client remembers the codes it spent, so it can say
        what is wrong before any attempt is counted against the account."""
        if self.session.keystore.totp_code_used(server, username, totp_code):
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
        token = self.session.keystore.load_session()
        profile = self.session.keystore.load_profile()
        if token and profile:
            try:
                with self.session.token_api(profile.server, token) as api:
                    api.logout()
            except NotAuthenticated:
                pass  # already ended on the server; forget it here too
        self.session.keystore.clear_session()
        self.session.signed_in(None)

    def _who(self, profile: Profile) -> dict[str, Any]:
        record = verify_identity_record(profile.identity_record)
        return {"username": profile.username, "user_id": profile.user_id,
                "server": profile.server, "safety_number": record.safety_number}

    def whoami(self) -> dict[str, Any]:
        profile = self.session.profile()
        me = self.session.api.me()
        if me.get("user_id") != profile.user_id:
            raise VaultError("the session belongs to another account; log in again")
        self._check_own_record(me, profile)
        return self._who(profile)

    def recover(self, username: str, recovery_code: str, new_passphrase: str,
                totp_code: str, *, server: str | None = None) -> dict[str, Any]:
        """Reset the passphrase with the recovery code; TOTP is still required."""
        server = check_server_url(server) if server else self.session.server()
        rkeys = crypto.recovery_keys(crypto.parse_recovery_code(recovery_code))
        self._refuse_used_code(server, username, totp_code)
        with self.session.anonymous_api(server) as api:
            begin = api.recovery_begin({
                "username": username, "recovery_auth": b64e(rkeys.recovery_auth_key),
                "totp": totp_code,
            })
        self.session.keystore.remember_totp_code(server, username, totp_code)
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
        with self.session.token_api(server, str(begin["recovery_token"])) as api:
            api.recovery_complete({
                "kdf": kdf, "auth_key": b64e(keys.auth_key), "identity_wrapped_kek": wrapped,
            })
        # Recovery ends every session; the next login needs a fresh code.
        self.session.keystore.save_profile(profile)
        self.session.keystore.clear_session()
        self.session.signed_in(identity)
        return self._who(profile)
