"""T35, forged intake record: an uploader seals an intake record that claims someone else took
the file in, or that it was taken in after the audit log already recorded its upload.

The uploader is a real editor of the case with a valid signed manifest; only the intake record
inside the sealed metadata is forged, sealed with the client's own crypto as a modified client
would. The lawyer runs the real `casevault custody` against a real uvicorn: the forged record
is refused (exit 3) and nothing is shown; an honest record from the same route is shown.
"""

from __future__ import annotations

import json

import pytest
from attack_kit import PASSPHRASE, plant_upload

from client.cli.commands import main
from client.cli.exits import EXIT_INTEGRITY, EXIT_OK
from client.crypto import (
    FileMetadata,
)
from vault.protocol.intake import MAX_CLOCK_AHEAD_SECONDS, IntakeRecord


def _upload_with_intake(uploader, case_id: str, plaintext: bytes, *, taken_in_by: str,
                        taken_in_at: int) -> str:
    """Upload `plaintext` as `uploader` with an intake record of the given claims, signed and
    wrapped exactly like an honest upload. Returns the file id."""

    def metadata(sha256: str) -> FileMetadata:
        intake = IntakeRecord(sha256=sha256, original_name="search-log.pdf",
                              original_mtime=None, taken_in_by=taken_in_by,
                              taken_in_at=taken_in_at, source="seized phone", note="")
        return FileMetadata(name="search-log.pdf", size=len(plaintext), sha256=sha256,
                            intake=intake)

    return plant_upload(uploader, case_id, plaintext, metadata=metadata)


@pytest.fixture
def case(lawyer):
    """Alice's case; Bob is an editor who uploads with a modified client."""
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Okafor")
    alice.share(case_id, "bob", role="editor")
    return alice, bob, case_id


def _custody(monkeypatch, vault, live_server, case_id: str, file_id: str) -> int:
    """The real `casevault custody --json`, in this process, as the lawyer of `vault`."""
    monkeypatch.setenv("CASEVAULT_HOME", str(vault.keystore.home))
    monkeypatch.setenv("CASEVAULT_SERVER", live_server)
    monkeypatch.setenv("CASEVAULT_PASSPHRASE", PASSPHRASE)
    return main(["custody", case_id, file_id, "--json"])


def test_T35_intake_naming_another_person_is_refused(case, live_server, monkeypatch, capsys):
    alice, bob, case_id = case
    # Bob claims Alice took the seized material in: her name on his upload.
    forged = _upload_with_intake(bob, case_id, b"search log", taken_in_by=alice.identity().user_id,
                                 taken_in_at=bob.session.now())
    capsys.readouterr()
    assert _custody(monkeypatch, alice, live_server, case_id, forged) == EXIT_INTEGRITY
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "names someone other than the uploader" in captured.err


def test_T35_intake_time_after_the_logged_upload_is_refused(case, live_server, clock,
                                                            monkeypatch, capsys):
    alice, bob, case_id = case
    # Bob claims a time an hour past the server's clock (the one its log leaves carry) and
    # past the drift allowance.
    late = int(clock.now.timestamp()) + MAX_CLOCK_AHEAD_SECONDS + 3600
    forged = _upload_with_intake(bob, case_id, b"search log", taken_in_by=bob.identity().user_id,
                                 taken_in_at=late)
    capsys.readouterr()
    assert _custody(monkeypatch, alice, live_server, case_id, forged) == EXIT_INTEGRITY
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "later than the audit log" in captured.err


def test_T35_honest_intake_by_the_same_route_is_shown(case, live_server, monkeypatch, capsys):
    alice, bob, case_id = case
    # The same upload path with true claims: the refusal above is the forged record's, not
    # the route's. An intake time earlier than the upload is the honest case (taken in, then
    # uploaded later).
    honest = _upload_with_intake(bob, case_id, b"search log", taken_in_by=bob.identity().user_id,
                                 taken_in_at=bob.session.now() - 86_400)
    capsys.readouterr()
    assert _custody(monkeypatch, alice, live_server, case_id, honest) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["intake"]["taken_in_by"] == "bob"
    assert shown["intake"]["source"] == "seized phone"
    assert [e["action"] for e in shown["events"]] == ["file:version:uploaded"]
