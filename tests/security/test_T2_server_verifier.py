"""T2 (server side): the seized database holds only an argon2 hash of each `auth_key`."""

from __future__ import annotations

import sqlalchemy as sa
from attack_kit import dump_database, encodings_of

from vault.protocol.encoding import b64d


def test_T2_server_stores_only_an_argon2_hash_of_the_auth_key(make_user, app_settings):
    alice = make_user("alice")
    url = app_settings.resolved_database_url()
    seized = dump_database(url)
    for secret in (alice.auth_key, alice.recovery_auth):
        for form in {secret, *encodings_of(b64d(secret))}:
            assert form not in seized, "an auth key sits in the database as it was sent"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT auth_key_hash, recovery_auth_hash FROM users WHERE username = :u"),
                {"u": "alice"},
            ).one()
    finally:
        engine.dispose()
    assert all(h.startswith("$argon2id$") for h in row)
