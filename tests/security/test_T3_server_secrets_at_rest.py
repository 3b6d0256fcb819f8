"""T3: the state images the database and looks for second factors and live sessions in it.

TOTP secrets are sealed with a server key kept in the data folder, outside the database;
session tokens and TOTP recovery codes are stored as hashes.
"""

from __future__ import annotations

import base64

from attack_kit import dump_database, encodings_of


def test_T3_totp_secret_not_in_database_in_clear(make_user, app_settings):
    alice = make_user("alice")
    secret_b32 = alice.totp_secret
    raw = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    seized = dump_database(app_settings.resolved_database_url())
    assert "alice" in seized  # the dump does reach the account rows
    for form in {secret_b32, *encodings_of(raw)}:
        assert form not in seized, "TOTP secret found in the database"
    for code in alice.recovery_codes:
        assert code not in seized, "a TOTP recovery code found in the database"
    # The sealing key lives in the data folder, not in the database.
    key_file = app_settings.resolved_server_key_file()
    assert key_file.exists()
    for form in encodings_of(key_file.read_bytes()):
        assert form not in seized


def test_T3_session_tokens_stored_hashed(make_user, app_settings, client):
    alice = make_user("alice")
    assert client.get("/v1/me", headers=alice.headers).status_code == 200
    seized = dump_database(app_settings.resolved_database_url())
    for form in {alice.token, *encodings_of(alice.token)}:
        assert form not in seized, "a live session token found in the database"
