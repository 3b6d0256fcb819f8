"""Sessions, recovery, identity directory, problem+json, and what is stored at rest."""

from __future__ import annotations

import base64
import hashlib
import secrets

import sqlalchemy as sa
from fastapi.testclient import TestClient

from vault.protocol.encoding import b64e


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _login(client, user, code):
    response = client.post(
        "/v1/auth/login", json={"username": user.username, "auth_key": user.auth_key, "totp": code}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_list_revoke_one_revoke_all_and_logout(client, make_user, clock):
    alice = make_user("alice")
    second = _login(client, alice, alice.totp_at(clock.now))
    listed = client.get("/v1/sessions", headers=alice.headers).json()
    assert {s["session_id"] for s in listed} == {alice.session_id, second["session_id"]}
    assert [s["current"] for s in listed if s["session_id"] == alice.session_id] == [True]

    revoked = client.delete(f"/v1/sessions/{second['session_id']}", headers=alice.headers)
    assert revoked.status_code == 204
    assert client.get("/v1/me", headers=_bearer(second["token"])).status_code == 401
    again = client.delete(f"/v1/sessions/{second['session_id']}", headers=alice.headers)
    assert again.status_code == 404

    clock.advance(30)
    third = _login(client, alice, alice.totp_at(clock.now))
    everything = client.delete("/v1/sessions", headers=_bearer(third["token"]))
    assert everything.json() == {"revoked": 2}
    for token in (alice.token, third["token"]):
        assert client.get("/v1/me", headers=_bearer(token)).status_code == 401

    clock.advance(30)
    fourth = _login(client, alice, alice.totp_at(clock.now))
    assert client.post("/v1/auth/logout", headers=_bearer(fourth["token"])).status_code == 204
    assert client.get("/v1/me", headers=_bearer(fourth["token"])).status_code == 401


def test_cannot_revoke_someone_elses_session(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    response = client.delete(f"/v1/sessions/{bob.session_id}", headers=alice.headers)
    assert response.status_code == 404
    assert client.get("/v1/me", headers=bob.headers).status_code == 200


def test_idle_and_absolute_expiry(client, app, make_user, clock):
    settings = app.state.settings
    alice = make_user("alice")
    clock.advance(settings.session_idle_timeout - 60)
    assert client.get("/v1/me", headers=alice.headers).status_code == 200  # refreshes idle
    clock.advance(settings.session_idle_timeout - 60)
    assert client.get("/v1/me", headers=alice.headers).status_code == 200
    clock.advance(settings.session_idle_timeout + 1)
    idle = client.get("/v1/me", headers=alice.headers)
    assert idle.status_code == 401 and idle.json()["code"] == "not_authenticated"
    assert idle.headers["WWW-Authenticate"] == "Bearer"

    session = _login(client, alice, alice.totp_at(clock.now))
    step = settings.session_idle_timeout - 60
    used = 0
    while used + step < settings.session_absolute_lifetime:
        clock.advance(step)
        used += step
        assert client.get("/v1/me", headers=_bearer(session["token"])).status_code == 200
    clock.advance(settings.session_absolute_lifetime - used)
    assert client.get("/v1/me", headers=_bearer(session["token"])).status_code == 401


def test_missing_or_bogus_tokens(client, make_user):
    make_user("alice")
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers=_bearer("x" * 43)).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_tokens_and_totp_secrets_are_not_stored_in_the_clear(
    client, app, app_settings, make_user
):
    alice = make_user("alice")
    with app.state.engine.connect() as conn:
        token_hash, = conn.execute(
            sa.text("SELECT token_hash FROM sessions WHERE id = :i"), {"i": alice.session_id}
        ).one()
        sealed, = conn.execute(sa.text("SELECT totp_secret_sealed FROM users")).one()
        dump = "\n".join(
            repr(tuple(row))
            for table in ("users", "sessions", "totp_recovery_codes", "audit_events")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))  # noqa: S608
        )
    assert token_hash == hashlib.sha256(alice.token.encode()).hexdigest()
    raw_secret = base64.b32decode(alice.totp_secret)
    assert raw_secret not in bytes(sealed)
    for secret in (alice.token, alice.totp_secret, alice.auth_key, alice.recovery_auth,
                   *alice.recovery_codes):
        assert secret not in dump
    if not app_settings.resolved_database_url().startswith("sqlite"):
        return
    db_file = app_settings.resolved_database_url().removeprefix("sqlite:///")
    with open(db_file, "rb") as handle:
        data = handle.read()
    assert raw_secret not in data and alice.totp_secret.encode() not in data


def test_identity_directory(client, make_user, registration):
    alice, bob = make_user("alice"), make_user("bob")
    found = client.get("/v1/users/bob/identity", headers=alice.headers)
    assert found.status_code == 200
    assert found.json()["identity"] == bob.registration["identity"]
    assert client.get("/v1/users/bob/identity").status_code == 401
    assert client.get("/v1/users/nobody/identity", headers=alice.headers).status_code == 404
    body, _ = registration("carol")
    client.post("/v1/accounts/register", json=body)  # pending: not in the directory
    assert client.get("/v1/users/carol/identity", headers=alice.headers).status_code == 404


def _begin(client, user, code, recovery_auth=None):
    return client.post(
        "/v1/accounts/recovery/begin",
        json={
            "username": user.username,
            "recovery_auth": recovery_auth or user.recovery_auth,
            "totp": code,
        },
    )


def test_recovery_needs_the_recovery_key_and_totp_and_ends_all_sessions(
    client, app, make_user, clock
):
    alice = make_user("alice")
    assert _begin(client, alice, alice.totp_at(clock.now), b64e(secrets.token_bytes(32))).json()[
        "code"
    ] == "invalid_credentials"
    # A TOTP recovery code is not enough: recovery never bypasses the authenticator.
    assert _begin(client, alice, alice.recovery_codes[0]).status_code == 401

    started = _begin(client, alice, alice.totp_at(clock.now))
    assert started.status_code == 200, started.text
    start = started.json()
    assert start["identity_wrapped_recovery"] == alice.registration["identity_wrapped_recovery"]
    # The recovery token is no session, and a session token cannot complete recovery.
    assert client.get("/v1/me", headers=_bearer(start["recovery_token"])).status_code == 401
    new_key, new_recovery = b64e(secrets.token_bytes(32)), b64e(secrets.token_bytes(32))
    new_material = {
        "kdf": {"salt": b64e(secrets.token_bytes(16)), "ops": 1, "mem": 8 << 20},
        "auth_key": new_key,
        "identity_wrapped_kek": b64e(secrets.token_bytes(100)),
        "identity_wrapped_recovery": b64e(secrets.token_bytes(100)),
        "recovery_auth": new_recovery,
    }
    wrong = client.post("/v1/accounts/recovery/complete", json=new_material, headers=alice.headers)
    assert wrong.status_code == 401

    done = client.post(
        "/v1/accounts/recovery/complete", json=new_material,
        headers=_bearer(start["recovery_token"]),
    )
    assert done.status_code == 200, done.text
    assert done.json()["sessions_revoked"] == 2  # the login session and the recovery token
    assert client.get("/v1/me", headers=alice.headers).status_code == 401
    reuse = client.post(
        "/v1/accounts/recovery/complete", json=new_material,
        headers=_bearer(start["recovery_token"]),
    )
    assert reuse.status_code == 401

    clock.advance(30)
    old = client.post("/v1/auth/login", json={
        "username": "alice", "auth_key": alice.auth_key, "totp": alice.totp_at(clock.now)})
    assert old.status_code == 401
    new = client.post("/v1/auth/login", json={
        "username": "alice", "auth_key": new_key, "totp": alice.totp_at(clock.now)})
    assert new.status_code == 200
    assert new.json()["kdf"] == new_material["kdf"]
    assert new.json()["identity_wrapped_kek"] == new_material["identity_wrapped_kek"]
    with app.state.engine.connect() as conn:
        actions = set(conn.execute(sa.text("SELECT action FROM audit_events")).scalars())
    assert {"account:recovery:begin", "account:recovery:complete"} <= actions
    # The recovery code was rotated with the passphrase: the old one no longer begins a
    # recovery, the new one does and gets the identity wrapped under it.
    clock.advance(30)
    assert _begin(client, alice, alice.totp_at(clock.now)).status_code == 401
    clock.advance(30)
    rotated = _begin(client, alice, alice.totp_at(clock.now), new_recovery)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["identity_wrapped_recovery"] == new_material["identity_wrapped_recovery"]


def test_recovery_token_expires(client, app, make_user, clock):
    alice = make_user("alice")
    start = _begin(client, alice, alice.totp_at(clock.now)).json()
    clock.advance(app.state.settings.recovery_token_lifetime + 1)
    material = {
        "kdf": {"salt": b64e(secrets.token_bytes(16)), "ops": 1, "mem": 8 << 20},
        "auth_key": b64e(secrets.token_bytes(32)),
        "identity_wrapped_kek": b64e(secrets.token_bytes(100)),
        "identity_wrapped_recovery": b64e(secrets.token_bytes(100)),
        "recovery_auth": b64e(secrets.token_bytes(32)),
    }
    response = client.post(
        "/v1/accounts/recovery/complete", json=material,
        headers=_bearer(start["recovery_token"]),
    )
    assert response.status_code == 401


def test_errors_are_problem_json(client):
    missing = client.get("/v1/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    secret = b64e(secrets.token_bytes(32))
    invalid = client.post("/v1/auth/login", json={"username": "a", "auth_key": secret})
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["code"] == "invalid_request" and body["status"] == 422
    assert ["body", "totp"] in [e["loc"] for e in body["errors"]]
    assert secret not in invalid.text  # input is never echoed back
    not_json = client.post(
        "/v1/auth/login", content=b"{", headers={"content-type": "application/json"}
    )
    # A body that does not parse is the one encoding error, whatever the parser's complaint.
    assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_encoding"


def test_a_500_shows_only_a_request_id(app, caplog):
    @app.get("/v1/test-boom")
    def boom():
        raise RuntimeError("internal detail that must not leak")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/test-boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "internal detail" not in response.text
    assert "RuntimeError" not in response.text
    assert any(body["request_id"] in r.getMessage() for r in caplog.records)
