"""Registration, TOTP enrolment and activation, prelogin, invites."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlparse

import pyotp
import sqlalchemy as sa

from vault.api.app import create_app
from vault.protocol.encoding import b64e


def _events(app, action=None):
    query = "SELECT action, result, actor_id FROM audit_events ORDER BY id"
    with app.state.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(query))]
    return [r for r in rows if action is None or r[0] == action]


def _secret(enrolment) -> str:
    return parse_qs(urlparse(enrolment["totp_uri"]).query)["secret"][0]


def test_register_is_pending_until_a_totp_code_confirms(client, app, registration, clock):
    body, user = registration("alice")
    response = client.post("/v1/accounts/register", json=body)
    assert response.status_code == 201
    enrolment = response.json()
    assert enrolment["status"] == "pending"
    assert enrolment["user_id"] == user.user_id
    assert len(enrolment["recovery_codes"]) == 10
    code = pyotp.TOTP(_secret(enrolment)).at(clock.now)

    # Pending: login refused with the generic error, even with a correct code.
    login = {"username": "alice", "auth_key": user.auth_key, "totp": code}
    refused = client.post("/v1/auth/login", json=login)
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_credentials"

    wrong = client.post("/v1/accounts/activate", json={**login, "totp": "000000"})
    assert wrong.status_code == 401
    other_key = {**login, "auth_key": b64e(secrets.token_bytes(32))}
    assert client.post("/v1/accounts/activate", json=other_key).status_code == 401

    activated = client.post("/v1/accounts/activate", json=login)
    assert activated.status_code == 200, activated.text
    assert client.get("/v1/me", headers={"Authorization": "Bearer " + activated.json()["token"]})
    actions = [a for a, _, _ in _events(app)]
    assert "account:register:success" in actions
    assert "account:activate:success" in actions
    assert "account:key:registered" in actions


def test_key_registration_event_carries_the_signed_identity(client, app, make_user):
    alice = make_user("alice")
    with app.state.engine.connect() as conn:
        signed = conn.execute(
            sa.text("SELECT signed_record FROM audit_events WHERE action='account:key:registered'")
        ).scalar_one()
    assert alice.registration["identity"]["sig"] in signed


def test_username_rules_and_duplicates(client, registration):
    for bad in ("ab", "Alice", "a" * 33, "al ice", "al/ice", "alice\u00e9"):
        body, _ = registration("alice")
        body["username"] = bad
        response = client.post("/v1/accounts/register", json=body)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_request"
    body, _ = registration("alice")
    assert client.post("/v1/accounts/register", json=body).status_code == 201
    body, _ = registration("alice")
    taken = client.post("/v1/accounts/register", json=body)
    assert taken.status_code == 409 and taken.json()["code"] == "username_taken"


def test_stale_pending_registration_can_be_taken_over(client, registration, clock):
    body, _ = registration("alice")
    assert client.post("/v1/accounts/register", json=body).status_code == 201
    clock.advance(3600 + 1)
    body, _ = registration("alice")
    assert client.post("/v1/accounts/register", json=body).status_code == 201


def test_identity_record_must_verify_and_name_the_user(client, registration):
    body, _ = registration("alice")
    forged = dict(body["identity"])
    forged["sig"] = b64e(secrets.token_bytes(64))
    response = client.post("/v1/accounts/register", json={**body, "identity": forged})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_identity_record"

    mallory_body, _ = registration("mallory")
    response = client.post(
        "/v1/accounts/register", json={**body, "identity": mallory_body["identity"]}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_identity_record"


def test_weak_kdf_parameters_are_refused_without_the_test_switch(
    app_settings, clock, registration
):
    from fastapi.testclient import TestClient

    strict = create_app(app_settings.model_copy(update={"test_insecure_kdf": False}), clock=clock)
    with TestClient(strict) as client:
        for ops, mem in ((1, 64 << 20), (2, 32 << 20), (1, 8 << 20)):
            body, _ = registration("alice", ops=ops, mem=mem)
            response = client.post("/v1/accounts/register", json=body)
            assert response.status_code == 400
            assert response.json()["code"] == "weak_kdf_parameters"
        body, _ = registration("alice", ops=2, mem=64 << 20)
        assert client.post("/v1/accounts/register", json=body).status_code == 201


def test_cheap_kdf_floor_still_applies_in_test_mode(client, registration):
    body, _ = registration("alice", ops=1, mem=4 << 20)
    response = client.post("/v1/accounts/register", json=body)
    assert response.json()["code"] == "weak_kdf_parameters"


def test_malformed_secrets_are_client_errors(client, registration):
    body, _ = registration("alice")
    for field, value in (("auth_key", b64e(b"short")), ("identity_wrapped_kek", "")):
        response = client.post("/v1/accounts/register", json={**body, field: value})
        assert response.status_code == 400, field
        assert response.json()["code"] == "invalid_request"


def test_prelogin_returns_stored_parameters_and_fakes_unknown_names(client, registration):
    body, _ = registration("alice")
    client.post("/v1/accounts/register", json=body)
    known = client.post("/v1/accounts/prelogin", json={"username": "alice"}).json()
    assert known == body["kdf"]
    unknown = client.post("/v1/accounts/prelogin", json={"username": "nobody"}).json()
    again = client.post("/v1/accounts/prelogin", json={"username": "nobody"}).json()
    assert unknown == again
    assert set(unknown) == set(known)
    assert len(unknown["salt"]) == len(known["salt"])
    assert (unknown["ops"], unknown["mem"]) == (known["ops"], known["mem"])
    other = client.post("/v1/accounts/prelogin", json={"username": "nobody2"}).json()
    assert other["salt"] != unknown["salt"]


def test_invite_only_registration(app_settings, clock, registration):
    from fastapi.testclient import TestClient

    from vault.services.accounts import create_invite

    app = create_app(app_settings.model_copy(update={"invite_only": True}), clock=clock)
    with TestClient(app) as client:
        body, _ = registration("alice")
        refused = client.post("/v1/accounts/register", json=body)
        assert refused.status_code == 403 and refused.json()["code"] == "invite_required"
        bogus = client.post("/v1/accounts/register", json={**body, "invite": "made-up"})
        assert bogus.json()["code"] == "invite_required"
        with app.state.sessionmaker() as db:
            code = create_invite(db, now=clock.now)
        ok = client.post("/v1/accounts/register", json={**body, "invite": code})
        assert ok.status_code == 201
        body2, _ = registration("bob")
        reused = client.post("/v1/accounts/register", json={**body2, "invite": code})
        assert reused.status_code == 403


def test_invite_survives_a_failed_registration(app_settings, clock, registration):
    from fastapi.testclient import TestClient

    from vault.services.accounts import create_invite

    app = create_app(app_settings.model_copy(update={"invite_only": True}), clock=clock)
    with TestClient(app) as client:
        with app.state.sessionmaker() as db:
            code = create_invite(db, now=clock.now)
            taken = create_invite(db, now=clock.now)
        first, _ = registration("alice")
        assert client.post("/v1/accounts/register", json={**first, "invite": taken}).is_success
        clash, _ = registration("alice")
        response = client.post("/v1/accounts/register", json={**clash, "invite": code})
        assert response.status_code == 409
        # The rolled-back registration did not use up the invite.
        body, _ = registration("bob")
        assert client.post("/v1/accounts/register", json={**body, "invite": code}).is_success
