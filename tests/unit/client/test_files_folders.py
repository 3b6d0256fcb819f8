"""client.files.folders: walking a local tree for `put`, and planning where `get` writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from client.errors import VaultError
from client.files.folders import find_clash, folder_arg, in_folder, make_parents, place, plan_upload


def _write(root, rel: str, data: bytes = b"x"):
    path = root.joinpath(*rel.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_plan_walks_like_cp_r_sorted_and_under_to(tmp_path, monkeypatch):
    for rel in ("Case/b.txt", "Case/a/z.txt", "Case/a/y.txt"):
        _write(tmp_path, rel)
    plain = _write(tmp_path, "memo.txt")
    planned = plan_upload([tmp_path / "Case", plain], to="Out/2024/")
    assert [p.case_path for p in planned] == [
        "Out/2024/Case/a/y.txt", "Out/2024/Case/a/z.txt", "Out/2024/Case/b.txt",
        "Out/2024/memo.txt"]
    # `put CASE .` names the directory by its own name.
    monkeypatch.chdir(tmp_path / "Case")
    assert plan_upload([Path(".")], to=None)[0].case_path == "Case/a/y.txt"


def test_plan_normalises_names_to_nfc(tmp_path):
    _write(tmp_path, "D/Cafe\u0301.txt")  # decomposed, as macOS file systems spell it
    (planned,) = plan_upload([tmp_path / "D"], to=None)
    assert planned.case_path == "D/Caf\u00e9.txt"


def test_plan_skips_links_and_special_files_with_a_notice(tmp_path):
    _write(tmp_path, "C/a.txt")
    (tmp_path / "C" / "up").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(tmp_path / "C" / "fifo")
    seen = []
    planned = plan_upload([tmp_path / "C"], to=None, on_skip=lambda p, r: seen.append((p.name, r)))
    assert [p.case_path for p in planned] == ["C/a.txt"]
    assert sorted(seen) == [("fifo", "not a regular file (device, socket or pipe)"),
                            ("up", "symbolic link, not followed")]


@pytest.mark.parametrize(("names", "message"), [
    (["a.txt", "A.TXT"], "letter case"),
    (["Stra\u00dfe.txt", "STRASSE.txt"], "letter case"),
    (["con.txt"], "reserved on Windows"),
    (["trailing. "], "dot or a space"),
    (["a\u202etxt.exe"], "control and format characters"),
])
def test_plan_refuses_before_anything_is_read(tmp_path, names, message):
    for name in names:
        _write(tmp_path, f"D/{name}")
    with pytest.raises(VaultError, match=message):
        plan_upload([tmp_path / "D"], to=None)


def test_clash_of_a_file_with_a_folder():
    assert find_clash(["Evidence", "evidence/a.pdf"]) == (0, 1)
    assert find_clash(["evidence/a.pdf", "EVIDENCE"]) == (0, 1)
    assert find_clash(["Ev/a", "Evidence/a"]) is None


def test_folder_argument_and_listing_filter():
    assert folder_arg("Evidence/photos/", "--to") == "Evidence/photos"
    with pytest.raises(VaultError, match=r"--folder '\.\./x'"):
        folder_arg("../x", "--folder")
    rows = [{"path": p, "file_id": str(i)} for i, p in enumerate(["b", "Ev/x", "Evidence/y"])]
    assert [r["path"] for r in in_folder(rows, "Evidence")] == ["Evidence/y"]
    assert [r["path"] for r in in_folder(rows, "")] == ["Ev/x", "Evidence/y", "b"]


def test_place_keeps_identical_files_and_refuses_others(tmp_path):
    data = b"exhibit"
    sha = hashlib.sha256(data).hexdigest()
    _write(tmp_path, "A/same.txt", data)
    _write(tmp_path, "A/other.txt", b"changed")
    _write(tmp_path, "file-not-folder", b"")
    assert place(tmp_path, "A/same.txt", size=len(data), sha256=sha).present
    assert "other content" in place(tmp_path, "A/other.txt", size=7, sha256=sha).problems[0]
    assert "not a folder" in place(tmp_path, "file-not-folder/x", size=1, sha256=sha).problems[0]
    fresh = place(tmp_path, "B/C/new.txt", size=1, sha256=sha)
    assert fresh.problems == [] and not fresh.present
    assert make_parents(fresh) == tmp_path / "B" / "C" / "new.txt"
    assert (tmp_path / "B" / "C").is_dir()
