"""Accounts through the real `casevault` command: enrolment output, TOTP codes used once, and
recovery with the recovery code (new passphrase, TOTP still required, every session ended)."""

from __future__ import annotations

import json
import re
import secrets

import httpx

TOTP_RECOVERY_CODE = re.compile(r"^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")


def _login_events(lawyer) -> list[str]:
    rows = lawyer.server.sql(
        "SELECT action FROM audit_events WHERE actor_id = :u AND action LIKE 'account:%' "
        "ORDER BY id", {"u": lawyer.user_id})
    return [r[0] for r in rows]


def test_register_json_adds_totp_recovery_codes(lawyers) -> None:
    (alice,) = lawyers("alice")
    assert len(alice.totp_recovery_codes) == 10
    assert len(set(alice.totp_recovery_codes)) == 10
    assert all(TOTP_RECOVERY_CODE.match(c) for c in alice.totp_recovery_codes)


def test_register_human_output_shows_every_code_with_a_warning(laptop) -> None:
    lawyer = laptop(f"dora-{secrets.token_hex(3)}", "dora")
    proc = lawyer.popen("register", lawyer.username)
    assert proc.stdout is not None
    head = []
    while not lawyer.totp_uri:
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        head.append(line)
        if "otpauth://" in line:
            lawyer.totp_uri = line.split("URI:", 1)[1].strip()
    # Not communicate(): it reads the pipe underneath lines readline() already buffered.
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(lawyer.totp_now() + "\n")
    proc.stdin.close()
    rest = "".join(head) + proc.stdout.read()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert "RECOVERY CODE (shown only this once" in rest
    assert "TOTP RECOVERY CODES (shown only this once" in rest
    codes = [w for w in rest.split() if TOTP_RECOVERY_CODE.match(w)]
    assert len(codes) == 10
    assert "is active and logged in" in rest


def test_same_totp_code_twice_is_refused_clearly(lawyers, laptop) -> None:
    (alice,) = lawyers("alice")
    # The code that activated the account: this client spent it and says so, without asking
    # the server (so no failed attempt is counted against the account).
    reused = alice.fail("login", alice.username, "--totp", alice.activation_code)
    assert "already used" in reused.stderr and "wait for the next code" in reused.stderr
    assert "account:totp:replay" not in _login_events(alice)

    # The next time step's code works (the server accepts +-1 step) ...
    nxt = alice.totp_at(30)
    ok = alice.run("login", alice.username, "--totp", nxt)
    assert "Logged in as" in ok.stdout
    assert alice.json("whoami")["username"] == alice.username
    # ... once.
    again = alice.fail("login", alice.username, "--totp", nxt)
    assert "already used" in again.stderr

    # What the server itself answers to a replayed step, seen from a second laptop that does
    # not know the code was spent: the one generic refusal, and a replay event in the log.
    second = laptop(alice.username, "laptop-2")
    refused = second.fail("login", alice.username, "--totp", nxt)
    assert "wrong username, passphrase or code" in refused.stderr
    assert "account:totp:replay" in _login_events(alice)


def test_recover_resets_passphrase_and_ends_sessions(lawyers, laptop) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Recovery")["case_id"]
    doc = alice.workdir / "proof.txt"
    doc.write_bytes(b"statement taken before the phone was lost")
    (item,) = alice.json("put", case_id, str(doc))
    old_token = json.loads((alice.home / "session.json").read_text())["token"]

    # `casevault recover USERNAME`: recovery code then TOTP code on stdin, new passphrase.
    new_passphrase = "a completely new passphrase"
    alice.extra_env["CASEVAULT_PASSPHRASE"] = new_passphrase
    proc = alice.run("recover", alice.username,
                     input=f"{alice.recovery_code}\n{alice.totp_at(30)}\n")
    assert "Passphrase reset" in proc.stdout and "Every session was ended" in proc.stdout

    # Every session ended: the token the laptop held is refused by the server.
    me = httpx.get(f"{alice.server.url}/v1/me",
                   headers={"Authorization": f"Bearer {old_token}"}, timeout=10)
    assert me.status_code == 401
    assert "not logged in" in alice.fail("whoami").stderr

    # The old passphrase is refused, with a valid unused TOTP recovery code (so the refusal is
    # the passphrase's) ...
    code = alice.totp_recovery_codes[0]
    alice.extra_env["CASEVAULT_PASSPHRASE"] = "correct horse battery staple"
    old = alice.fail("login", alice.username, "--totp", code)
    assert "wrong username, passphrase or code" in old.stderr
    # ... and the new one works with that same code; the identity (and so the case) survived.
    alice.extra_env["CASEVAULT_PASSPHRASE"] = new_passphrase
    alice.run("login", alice.username, "--totp", code.lower())
    out = alice.workdir / "proof-again.txt"
    alice.run("get", case_id, item["file_id"], "-o", str(out))
    assert out.read_bytes() == doc.read_bytes()
    # A TOTP recovery code works once: this client knows it spent it, the server refuses it.
    alice.run("logout")
    assert "recovery code was already used" in alice.fail(
        "login", alice.username, "--totp", code).stderr
    second = laptop(alice.username, "laptop-2")
    second.extra_env["CASEVAULT_PASSPHRASE"] = new_passphrase
    assert "wrong username" in second.fail("login", alice.username, "--totp", code).stderr


def test_recover_with_a_wrong_recovery_code_changes_nothing(lawyers) -> None:
    (alice,) = lawyers("alice")
    alice.extra_env["CASEVAULT_PASSPHRASE"] = "another passphrase"
    wrong = "-".join(["AAAA"] * 9)
    proc = alice.fail("recover", alice.username, "--recovery-code", wrong,
                      "--totp", alice.totp_at(30))
    assert "Traceback" not in proc.stderr
    # Still logged in with the old passphrase and session.
    alice.extra_env.clear()
    assert alice.json("whoami")["username"] == alice.username
