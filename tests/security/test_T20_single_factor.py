"""T20: the thief holds one factor: a phished passphrase (so the `auth_key`), or a TOTP code,
or the identity recovery code. None of them alone opens the account."""

from __future__ import annotations


def _login(client, username, auth_key, totp):
    return client.post(
        "/v1/auth/login", json={"username": username, "auth_key": auth_key, "totp": totp}
    )


def test_T20_passphrase_alone_does_not_log_in(client, make_user):
    alice = make_user("alice")
    for code in ("", "000000", "12345", "abcdef", "0000000"):
        response = _login(client, "alice", alice.auth_key, code)
        assert response.status_code == 401
        assert "token" not in response.json()


def test_T20_totp_code_alone_does_not_log_in(client, make_user, clock):
    alice = make_user("alice")
    response = _login(client, "alice", "A" * 43, alice.totp_at(clock.now))
    assert response.status_code == 401
    # The code was not burnt by the failed attempt: the lawyer can still use it.
    assert _login(client, "alice", alice.auth_key, alice.totp_at(clock.now)).status_code == 200


def test_T20_recovery_still_needs_totp(client, make_user, clock):
    alice = make_user("alice")
    begin = "/v1/accounts/recovery/begin"
    body = {"username": "alice", "recovery_auth": alice.recovery_auth}
    # The identity recovery code without a second factor gets nothing.
    for code in ("", "000000"):
        response = client.post(begin, json={**body, "totp": code})
        assert response.status_code == 401
        assert "identity_wrapped_recovery" not in response.text
    # A TOTP code with a wrong recovery proof gets nothing either.
    wrong = {"username": "alice", "recovery_auth": "A" * 43, "totp": alice.totp_at(clock.now)}
    assert client.post(begin, json=wrong).status_code == 401
    # Both together work: this is the lawyer's own recovery path.
    response = client.post(begin, json={**body, "totp": alice.totp_at(clock.now)})
    assert response.status_code == 200
    assert response.json()["identity_wrapped_recovery"]


def test_T20_recovery_token_is_not_a_session(client, make_user, clock):
    alice = make_user("alice")
    response = client.post(
        "/v1/accounts/recovery/begin",
        json={
            "username": "alice",
            "recovery_auth": alice.recovery_auth,
            "totp": alice.totp_at(clock.now),
        },
    )
    token = response.json()["recovery_token"]
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
