"""T20: a recovery code that stays valid after use.

The code printed at registration is typed at recovery, perhaps read out or left on paper: if it
stayed valid, whoever saw it then (with a TOTP code) could reset the passphrase again later.
Every `casevault recover` now rotates it: the client makes a new code and wraps the identity
under it, the server swaps the verifier and the wrapped identity in the transaction that
completes recovery, and the new code is shown once. Through the real CLI against a real server.
"""

from __future__ import annotations

import re
import time

# 36 Crockford base32 characters in 9 groups of 4, as registration prints it.
RECOVERY_CODE = re.compile(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){8}")


def _next_totp_step() -> None:
    # The server takes each TOTP step once and never an older one: the next recovery needs a
    # step that has not been used, so wait for the real clock to begin one.
    time.sleep(30 - time.time() % 30 + 0.5)


def test_T20_recovery_code_is_rotated_and_the_old_one_fails(lawyers) -> None:
    (alice,) = lawyers("alice")
    code_a = alice.recovery_code
    alice.extra_env["CASEVAULT_PASSPHRASE"] = "first new passphrase"
    first = alice.json("recover", alice.username, "--recovery-code", code_a,
                       "--totp", alice.totp_at(30))
    code_b = first["recovery_code"]
    assert RECOVERY_CODE.fullmatch(code_a) and RECOVERY_CODE.fullmatch(code_b)
    assert first["sessions_ended"] is True and first["username"] == alice.username
    assert code_b != code_a

    _next_totp_step()
    fresh = alice.totp_at(30)  # a step after the one the first recovery used
    # Code A again, with a valid unused TOTP code: refused, and nothing changes.
    alice.extra_env["CASEVAULT_PASSPHRASE"] = "an attacker's passphrase"
    refused = alice.fail("recover", alice.username, "--recovery-code", code_a, "--totp", fresh)
    assert "wrong username, passphrase or code" in refused.stderr

    # Code B with that same TOTP code (so A's refusal was A's): works, and shows code C once.
    alice.extra_env["CASEVAULT_PASSPHRASE"] = "second new passphrase"
    second = alice.run("recover", alice.username, "--recovery-code", code_b, "--totp", fresh)
    assert "Passphrase reset" in second.stdout
    assert "NEW RECOVERY CODE (shown only this once" in second.stdout
    shown = [w for w in second.stdout.split() if RECOVERY_CODE.fullmatch(w)]
    assert len(shown) == 1 and shown[0] not in (code_a, code_b)

    # The passphrase set with code B is the one in force; the identity survived both.
    alice.run("login", alice.username, "--totp", alice.totp_recovery_codes[0])
    assert alice.json("whoami")["username"] == alice.username
