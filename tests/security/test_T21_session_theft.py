"""T21: a bearer token copied from a laptop, a proxy log or a backup is replayed after the
lawyer logged out, after it expired, or after the lawyer revoked every session."""

from __future__ import annotations


def _me(client, token):
    return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def _login(client, clock, user):
    clock.advance(30)  # a fresh TOTP step
    code = user.totp_at(clock.now)
    response = client.post(
        "/v1/auth/login",
        json={"username": user.username, "auth_key": user.auth_key, "totp": code},
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def _assert_dead(response):
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_T21_token_dead_after_logout(client, make_user):
    alice = make_user("alice")
    stolen = alice.token
    assert _me(client, stolen).status_code == 200
    assert client.post("/v1/auth/logout", headers=alice.headers).status_code == 204
    _assert_dead(_me(client, stolen))
    _assert_dead(client.get("/v1/sessions", headers=alice.headers))


def test_T21_token_dead_after_idle_expiry(client, make_user, clock, app_settings):
    alice = make_user("alice")
    # make_user moved the clock one TOTP step past the login already.
    clock.advance(app_settings.session_idle_timeout - 60)
    assert _me(client, alice.token).status_code == 200  # use keeps it alive
    clock.advance(app_settings.session_idle_timeout + 1)
    _assert_dead(_me(client, alice.token))


def test_T21_token_dead_after_absolute_expiry(client, make_user, clock, app_settings):
    alice = make_user("alice")
    step = app_settings.session_idle_timeout // 2
    elapsed = 30  # make_user moved the clock one TOTP step past the login
    # The thief keeps the session busy so the idle timeout never fires.
    while elapsed + step < app_settings.session_absolute_lifetime:
        clock.advance(step)
        elapsed += step
        assert _me(client, alice.token).status_code == 200
    clock.advance(step + 1)
    _assert_dead(_me(client, alice.token))


def test_T21_revoke_all_kills_other_sessions(client, make_user, clock):
    alice = make_user("alice")
    stolen = alice.token
    fresh = _login(client, clock, alice)
    assert _me(client, stolen).status_code == 200
    response = client.delete("/v1/sessions", headers={"Authorization": f"Bearer {fresh}"})
    assert response.status_code == 200
    _assert_dead(_me(client, stolen))


def test_T21_forged_or_malformed_tokens_refused(client, make_user):
    alice = make_user("alice")
    for token in (alice.token[:-1], alice.token + "A", "", "null", "../" * 10, alice.session_id):
        _assert_dead(_me(client, token))
    _assert_dead(client.get("/v1/me"))
