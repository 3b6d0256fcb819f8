"""T17: online guessing of the passphrase and the TOTP code.

Attempts are counted per account and per source address in the database before any argon2
work, for unknown names too; over the limit the answer is 429 with Retry-After, and if the
counters cannot be reached the login is refused (fail closed).
"""

from __future__ import annotations

import sqlalchemy as sa
from attack_kit import CallCounter

from vault.api.app import create_app


def _login(client, username, auth_key, totp="000000"):
    return client.post(
        "/v1/auth/login", json={"username": username, "auth_key": auth_key, "totp": totp}
    )


def test_T17_login_rate_limited_before_argon2(app, client, make_user, clock, app_settings):
    alice = make_user("alice")
    argon2 = CallCounter(app.state.hasher, "verify")
    limit = app_settings.rate_limit_account_attempts
    for _ in range(limit):
        # The attacker has the passphrase (phished) and guesses the code.
        assert _login(client, "alice", alice.auth_key).status_code == 401
    assert argon2.calls == limit
    for _ in range(5):
        refused = _login(client, "alice", alice.auth_key)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        retry_after = int(refused.headers["Retry-After"])
        assert 0 < retry_after <= app_settings.rate_limit_window
    assert argon2.calls == limit, "argon2 ran for an attempt over the limit"
    # While limited, even the right code does not get in: the limit is not an oracle.
    right = _login(client, "alice", alice.auth_key, alice.totp_at(clock.now))
    assert right.status_code == 429
    # The window passes; the lawyer gets in again.
    clock.advance(app_settings.rate_limit_window)
    assert _login(client, "alice", alice.auth_key, alice.totp_at(clock.now)).status_code == 200


def test_T17_unknown_names_rate_limited_too(app, client, app_settings):
    argon2 = CallCounter(app.state.hasher, "verify")
    limit = app_settings.rate_limit_account_attempts
    answers = [_login(client, "nosuchlawyer", "A" * 43).status_code for _ in range(limit + 3)]
    assert answers == [401] * limit + [429] * 3
    assert argon2.calls == limit  # the dummy hash costs the same, then nothing at all


def test_T17_per_address_limit_across_many_accounts(app_settings, clock):
    from fastapi.testclient import TestClient

    settings = app_settings.model_copy(update={"rate_limit_address_attempts": 7})
    app = create_app(settings, clock=clock)
    argon2 = CallCounter(app.state.hasher, "verify")
    with TestClient(app) as client:
        # Spraying one guess at each of many names from one address.
        answers = [_login(client, f"lawyer{i}", "A" * 43).status_code for i in range(10)]
    assert answers == [401] * 7 + [429] * 3
    assert argon2.calls == 7


def test_T17_counter_store_failure_fails_closed(app, client, make_user, clock, app_settings):
    alice = make_user("alice")
    engine = sa.create_engine(app_settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE rate_limits"))
    finally:
        engine.dispose()
    argon2 = CallCounter(app.state.hasher, "verify")
    response = _login(client, "alice", alice.auth_key, alice.totp_at(clock.now))
    assert response.status_code == 503
    assert "token" not in response.text
    assert argon2.calls == 0
