"""T5 (look-alike colleagues, second half): an upload to a case with a member nobody verified,
or a share with such a person, reaches whoever holds that key. The client asks once, with the
safety numbers on screen, on a real (pseudo-)terminal; remembers the answer per person and key;
and where nobody can answer (--json, no terminal) goes on without hanging but says so on
stderr every time and in the --json result. Real `casevault` against a real server.
"""

from __future__ import annotations

import json

import cli_kit

server = cli_kit.server
lawyers = cli_kit.lawyers


def _file(lawyer, name: str, text: str):
    path = lawyer.workdir / name
    path.write_text(text)
    return path


def test_T5_lookalike_upload_to_unverified_member_asks_once(lawyers):
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Nakamura")["case_id"]
    # Shared from a script: not confirmed by anyone, so the first upload at a terminal asks.
    alice.run("share", case_id, bob.username, "--role", "viewer")
    number = bob.json("fingerprint")["safety_number"]
    doc = _file(alice, "advice.txt", "privileged advice")

    # Declined: nothing is uploaded.
    code, screen = cli_kit.run_on_terminal(alice, "put", case_id, str(doc), answer="n")
    assert code != 0, screen
    assert "Continue? [y/N]" in screen and number in screen and bob.username in screen
    assert alice.json("ls", case_id) == []

    # Confirmed: uploaded, and the answer is remembered for Bob's key.
    code, screen = cli_kit.run_on_terminal(alice, "put", case_id, str(doc), answer="y")
    assert code == 0, screen
    assert number in screen
    code, screen = cli_kit.run_on_terminal(alice, "put", case_id, str(doc))
    assert code == 0, screen
    assert "[y/N]" not in screen
    assert len(alice.json("ls", case_id)) == 2


def test_T5_lookalike_share_with_unverified_person_asks_once(lawyers):
    alice, bob = lawyers("alice", "bob")
    first = alice.json("case", "create", "R v Osei")["case_id"]
    second = alice.json("case", "create", "R v Osei (bail)")["case_id"]
    number = bob.json("fingerprint")["safety_number"]
    code, screen = cli_kit.run_on_terminal(alice, "share", first, bob.username, answer="n")
    assert code != 0 and number in screen and "Continue? [y/N]" in screen
    assert [m["username"] for m in alice.json("members", first)] == [alice.username]
    code, screen = cli_kit.run_on_terminal(alice, "share", first, bob.username, answer="y")
    assert code == 0, screen
    code, screen = cli_kit.run_on_terminal(alice, "share", second, bob.username)
    assert code == 0 and "[y/N]" not in screen, screen
    # Verified people are never asked.
    carol = lawyers("carol")[0]
    alice.run("trust", carol.username, carol.json("fingerprint")["safety_number"])
    code, screen = cli_kit.run_on_terminal(alice, "share", second, carol.username)
    assert code == 0 and "[y/N]" not in screen, screen


def test_T5_lookalike_non_interactive_never_hangs_nor_hides_the_warning(lawyers):
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Adeyemi")["case_id"]
    # No terminal: no question; the share goes on, with the state on stderr and in the JSON.
    proc = alice.run("share", case_id, bob.username, "--json")
    shared = json.loads(proc.stdout)
    assert shared["trust"] == "unverified" and shared["verified"] is False
    assert "warning" in proc.stderr and bob.username in proc.stderr
    assert shared["safety_number"] in proc.stderr

    doc = _file(alice, "memo.txt", "memo")
    for _ in range(2):  # not confirmed by anyone, so said every time
        proc = alice.run("put", case_id, str(doc), "--json")
        (item,) = json.loads(proc.stdout)
        assert item["unverified_members"] == [{
            "username": bob.username, "trust": "unverified",
            "safety_number": shared["safety_number"], "confirmed": False}]
        assert "warning" in proc.stderr and bob.username in proc.stderr

    # --yes confirms (and is remembered): no more warnings for that key.
    alice.run("put", case_id, str(doc), "--yes")
    proc = alice.run("put", case_id, str(doc), "--json")
    (item,) = json.loads(proc.stdout)
    assert item["unverified_members"][0]["confirmed"] is True
    assert proc.stderr == ""
