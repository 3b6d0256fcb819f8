"""T5 (look-alike colleagues): a hostile server puts a name that looks like a verified
colleague's ("b\u043eb", Cyrillic o, beside "bob") in front of the lawyer, hoping she sees the
same name and shares with, or trusts, a key the operator holds. The client holds every name it
receives to the server's own alphabet (vault.protocol.usernames) and refuses anything else,
and it shows every person with a trust state (verified / unverified / changed).
Real `casevault` processes against a real `casevault-server` under uvicorn.
"""

from __future__ import annotations

import json

import cli_kit
import nacl.signing

from client.crypto.keys import Identity
from vault.protocol.encoding import FORMAT_VERSION, b64d, b64e, parse_canonical
from vault.protocol.ids import new_id
from vault.protocol.records import (
    KEM_PK_BYTES,
    LABEL_IDENTITY,
    RecordError,
    sign_record,
    verify_identity_record,
)
from vault.protocol.usernames import is_valid_username

# The CLI suite's fixtures: one real server for the module, lawyers with their own homes.
server = cli_kit.server
lawyers = cli_kit.lawyers

EXIT_INTEGRITY = 3
EXIT_KEY_CHANGED = 4


def lookalike(name: str) -> str:
    """`name` with its first Latin a/o/e/c/p swapped for the Cyrillic letter drawn the same."""
    for latin, cyrillic in zip("aoecp", "\u0430\u043e\u0435\u0441\u0440", strict=True):
        if latin in name:
            return name.replace(latin, cyrillic, 1)
    raise AssertionError(name)


def lookalike_record(user_id: str, username: str) -> tuple[dict, str]:
    """An identity record the operator signs for a look-alike name (built by hand: the
    protocol's own constructor refuses such a name)."""
    key = nacl.signing.SigningKey.generate()
    body = {"v": FORMAT_VERSION, "user_id": user_id, "username": username,
            "sign_pk": b64e(bytes(key.verify_key)), "kem_pk": b64e(b"\x01" * KEM_PK_BYTES),
            "created_at": 1_700_000_000}
    return sign_record(LABEL_IDENTITY, body, key), username


def test_T5_lookalike_alphabet_is_the_servers_own():
    # One definition, a full match: no look-alike letter, no trailing newline, no upper case.
    assert is_valid_username("bob-1a2b3c")
    for name in ("b\u043eb-1a2b3c", "bob\n", "Bob", "bo", "b" * 33, "bob\u202e", ""):
        assert not is_valid_username(name), name
    # An identity record naming a look-alike does not verify, however well it is signed.
    signed, _ = lookalike_record(new_id(), "\u0430lice")
    try:
        verify_identity_record(signed)
    except RecordError:
        pass
    else:
        raise AssertionError("a look-alike identity record verified")
    # A well-formed one does.
    assert verify_identity_record(Identity.generate(new_id(), "alice").public_record())


def test_T5_lookalike_account_row_is_refused_by_the_client(lawyers, server):
    """The operator renames a member's account to a look-alike of the verified colleague and
    publishes a record for that name: members, ls and audit refuse instead of showing it."""
    alice, bob, carol = lawyers("alice", "bob", "carol")
    case_id = alice.json("case", "create", "R v Okafor")["case_id"]
    alice.run("share", case_id, bob.username, "--role", "editor")
    alice.run("trust", bob.username, bob.json("fingerprint")["safety_number"])
    alice.run("share", case_id, carol.username, "--role", "editor")
    assert {m["trust"] for m in alice.json("members", case_id)
            if m["username"] == bob.username} == {"verified"}

    fake = lookalike(bob.username)
    assert fake != bob.username and fake.encode() != bob.username.encode()
    ((body,),) = server.sql("SELECT identity_body FROM users WHERE username = :u",
                            {"u": carol.username})
    carol_id = parse_canonical(b64d(body))["user_id"]
    record, _ = lookalike_record(carol_id, fake)
    server.sql("UPDATE users SET username = :f, identity_body = :b, identity_sig = :s "
               "WHERE username = :u", {"f": fake, "b": record["body"], "s": record["sig"],
                                       "u": carol.username})

    # A fresh laptop of Alice's (nothing pinned yet) and her own one: both refuse the name.
    second = harness_laptop(alice)
    for who in (alice, second):
        for command in (("members", case_id), ("ls", case_id), ("audit", case_id)):
            proc = who.fail(*command)
            assert proc.returncode == EXIT_INTEGRITY, proc.stderr
            assert "look-alike" in proc.stderr and ascii(fake) in proc.stderr
            assert fake not in proc.stderr  # shown escaped, never as the look-alike itself
            assert proc.stdout == ""


def harness_laptop(alice):
    """Alice logged in on a second machine: no pins, no cache."""
    other = cli_kit.harness.Lawyer(alice.username, alice.workdir.parent / "second-home",
                           alice.server, alice.workdir)
    other.run("login", alice.username, "--server", alice.server.url,
              "--totp", alice.totp_recovery_codes[0])
    return other


def test_T5_lookalike_typed_or_published_name_is_never_shared_with(lawyers, server):
    alice, bob, dave = lawyers("alice", "bob", "dave")
    case_id = alice.json("case", "create", "R v Mensah")["case_id"]
    fake = lookalike(bob.username)
    # Pasted from a message: the name names nobody the server could have registered.
    proc = alice.fail("share", case_id, fake)
    assert "is not a username" in proc.stderr and ascii(fake) in proc.stderr
    # The directory answers for a real name with a record naming a look-alike.
    ((body,),) = server.sql("SELECT identity_body FROM users WHERE username = :u",
                            {"u": dave.username})
    record, _ = lookalike_record(parse_canonical(b64d(body))["user_id"], fake)
    server.sql("UPDATE users SET identity_body = :b, identity_sig = :s WHERE username = :u",
               {"b": record["body"], "s": record["sig"], "u": dave.username})
    proc = alice.fail("share", case_id, dave.username)
    assert proc.returncode == EXIT_INTEGRITY and "look-alike" in proc.stderr
    # Nothing was sealed to anyone: Alice is alone in the case.
    assert [m["username"] for m in alice.json("members", case_id)] == [alice.username]


def test_T5_trust_states_in_members_ls_and_audit(lawyers, server):
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Lindqvist")["case_id"]
    alice.run("share", case_id, bob.username, "--role", "editor", "--yes")
    doc = bob.workdir / "note.txt"
    doc.write_text("attendance note")
    bob.run("put", case_id, str(doc), "--yes")

    def states() -> tuple[str, str, set[str]]:
        (member,) = [m for m in alice.json("members", case_id) if m["username"] == bob.username]
        (item,) = alice.json("ls", case_id)
        actors = {e["actor_trust"] for e in alice.json("audit", case_id)
                  if e["actor"] == bob.username}
        return member["trust"], item["uploaded_by_trust"], actors

    assert states() == ("unverified", "unverified", {"unverified"})
    human = alice.run("members", case_id).stdout
    assert f"{bob.username}" in human and "unverified" in human
    assert f"{bob.username} (unverified)" in alice.run("ls", case_id).stdout

    alice.run("trust", bob.username, bob.json("fingerprint")["safety_number"])
    assert states() == ("verified", "verified", {"verified"})
    assert f"{bob.username} (verified)" in alice.run("ls", case_id).stdout

    # The directory now serves another key for Bob: the hard stop fires once, and from then
    # on Bob is shown as changed wherever he is named, until Alice verifies again.
    impostor = Identity.generate(bob.user_id, bob.username)
    record = impostor.public_record()
    server.sql("UPDATE users SET identity_body = :b, identity_sig = :s WHERE username = :u",
               {"b": record["body"], "s": record["sig"], "u": bob.username})
    other = alice.json("case", "create", "R v Lindqvist (appeal)")["case_id"]
    assert alice.fail("share", other, bob.username).returncode == EXIT_KEY_CHANGED
    assert states() == ("changed", "changed", {"changed"})
    assert "KEY CHANGED" in alice.run("members", case_id).stdout
    assert json.loads(alice.run("fingerprint", bob.username, "--json").stdout)["trust"] == \
        "changed"
