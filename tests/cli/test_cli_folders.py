"""Case folders through the real `casevault` command against a real uvicorn: `put` of a tree,
`ls` of a folder, `get` of several ids, of a folder and of the whole case (DESIGN.md 6, turn 2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

TREE = {
    "Pleadings/defence-statement.pdf": b"%PDF defence statement",
    "Pleadings/bail-application.pdf": b"%PDF bail application",
    "Evidence/photos/IMG_0001.jpg": b"\xff\xd8\xff photo one" * 50,
    "Evidence/photos/IMG_0002.jpg": b"\xff\xd8\xff photo two" * 50,
    "Evidence/witness-list.txt": b"W1, W2, W3\n",
    "Correspondence/letter-to-cps.docx": b"PK letter",
    "Correspondence/empty-note.txt": b"",
}


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _case_with_tree(lawyer) -> tuple[str, list[dict]]:
    case_id = lawyer.json("case", "create", "R v Achterberg")["case_id"]
    src = _tree(lawyer.workdir / "src", TREE)
    # Three directories, given the way a lawyer drags them in: each keeps its own name.
    put = lawyer.json("put", case_id, str(src / "Pleadings"), str(src / "Evidence"),
                      str(src / "Correspondence"))
    return case_id, put


def test_put_tree_ls_paths_and_folder_filter(lawyers):
    (alice,) = lawyers("alice")
    case_id, put = _case_with_tree(alice)
    assert sorted(e["path"] for e in put) == sorted(TREE)
    for entry in put:
        assert set(entry) == {"file_id", "version", "name", "size", "sha256", "path",
                              "unverified_members"}
        assert entry["name"] == entry["path"].rsplit("/", 1)[-1]
        assert entry["size"] == len(TREE[entry["path"]])

    listed = alice.json("ls", case_id)
    assert [e["path"] for e in listed] == sorted(TREE)
    assert {e["file_id"] for e in listed} == {e["file_id"] for e in put}
    assert all(set(e) >= {"file_id", "version", "name", "size", "sha256", "uploaded_by",
                          "uploaded_at", "path"} for e in listed)

    photos = alice.json("ls", case_id, "Evidence/photos")
    assert [e["path"] for e in photos] == ["Evidence/photos/IMG_0001.jpg",
                                           "Evidence/photos/IMG_0002.jpg"]
    evidence = alice.json("ls", case_id, "Evidence/")  # as a shell completes a folder
    assert len(evidence) == 3
    # Whole segments: "Evid" is not a prefix folder of "Evidence/...".
    assert alice.json("ls", case_id, "Evid") == []
    human = alice.run("ls", case_id, "Pleadings").stdout
    assert "Pleadings/defence-statement.pdf" in human and "Evidence" not in human
    # A folder the path rules refuse is refused, not listed as empty.
    assert "'..'" in alice.fail("ls", case_id, "../etc").stderr


def test_get_all_reproduces_the_tree_byte_for_byte(lawyers):
    (alice,) = lawyers("alice")
    case_id, _ = _case_with_tree(alice)
    out = alice.workdir / "hearing"
    got = alice.json("get", case_id, "--all", "-o", str(out))
    assert _files_under(out) == TREE
    assert sorted(e["case_path"] for e in got) == sorted(TREE)
    assert all(e["written"] for e in got)

    # Run again: every file is already there with the verified bytes, so nothing changes.
    again = alice.json("get", case_id, "--all", "-o", str(out))
    assert not any(e["written"] for e in again) and _files_under(out) == TREE

    # A file with other bytes in the way stops everything before anything is written.
    (out / "Pleadings" / "bail-application.pdf").write_bytes(b"edited locally")
    fresh = out / "Evidence" / "photos" / "IMG_0001.jpg"
    fresh.unlink()
    refused = alice.fail("get", case_id, "--all", "-o", str(out))
    assert refused.returncode == 1
    assert "bail-application.pdf exists with other content" in refused.stderr
    assert not fresh.exists()
    assert (out / "Pleadings" / "bail-application.pdf").read_bytes() == b"edited locally"


def test_get_folder_and_several_ids(lawyers):
    (alice,) = lawyers("alice")
    case_id, put = _case_with_tree(alice)
    by_path = {e["path"]: e["file_id"] for e in put}

    out = alice.workdir / "photos-out"
    alice.json("get", case_id, "--folder", "Evidence/photos", "-o", str(out))
    # As `cp -r Evidence/photos out` would: the folder itself, under its own name.
    assert _files_under(out) == {
        "photos/IMG_0001.jpg": TREE["Evidence/photos/IMG_0001.jpg"],
        "photos/IMG_0002.jpg": TREE["Evidence/photos/IMG_0002.jpg"]}

    two = [by_path["Pleadings/bail-application.pdf"], by_path["Correspondence/empty-note.txt"]]
    dest = alice.workdir / "two"  # does not exist yet: created
    got = alice.json("get", case_id, *two, "-o", str(dest))
    assert sorted(e["file_id"] for e in got) == sorted(two)
    assert _files_under(dest) == {
        "Pleadings/bail-application.pdf": TREE["Pleadings/bail-application.pdf"],
        "Correspondence/empty-note.txt": b""}

    # One id keeps its old meaning: -o is the file.
    single = alice.json("get", case_id, two[0], "-o", str(alice.workdir / "bail.pdf"))
    assert single["path"] == str(alice.workdir / "bail.pdf")
    assert "-o DIR" in alice.fail("get", case_id, "--all").stderr


def test_put_to_folder_and_plain_files(lawyers):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Brennan")["case_id"]
    src = _tree(alice.workdir / "src", {"scans/p1.pdf": b"page 1", "scans/p2.pdf": b"page 2"})
    memo = alice.workdir / "memo.txt"
    memo.write_bytes(b"memo")
    put = alice.json("put", case_id, str(src / "scans"), str(memo), "--to", "Disclosure/2024")
    assert sorted(e["path"] for e in put) == [
        "Disclosure/2024/memo.txt", "Disclosure/2024/scans/p1.pdf",
        "Disclosure/2024/scans/p2.pdf"]
    (root_file,) = alice.json("put", case_id, str(memo))
    assert root_file["path"] == "memo.txt"
    assert [e["path"] for e in alice.json("ls", case_id, "Disclosure/2024/scans")] == [
        "Disclosure/2024/scans/p1.pdf", "Disclosure/2024/scans/p2.pdf"]

    # A new version stays in its file's folder.
    memo.write_bytes(b"memo, second draft")
    mid = next(e["file_id"] for e in put if e["path"] == "Disclosure/2024/memo.txt")
    (v2,) = alice.json("put", case_id, str(memo), "--file-id", mid)
    assert (v2["version"], v2["path"]) == (2, "Disclosure/2024/memo.txt")
    assert "'..'" in alice.fail("put", case_id, str(memo), "--to", "a/../b").stderr


def test_put_refuses_collisions_and_bad_names_before_uploading(lawyers):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Castellanos")["case_id"]
    # Two names one case-insensitive disk cannot hold side by side; the tree sorts "Zeta"
    # last, so a refusal that came after uploading would have uploaded the rest.
    src = _tree(alice.workdir / "src", {"Bundle/Exhibit.pdf": b"A", "Bundle/exhibit.PDF": b"B",
                                        "Bundle/Zeta.txt": b"z"})
    refused = alice.fail("put", case_id, str(src / "Bundle"))
    assert "nothing was uploaded" in refused.stderr and "letter case" in refused.stderr
    assert alice.json("ls", case_id) == []

    bad = _tree(alice.workdir / "bad", {"Docs/ok.txt": b"ok", "Docs/nul.txt": b"device"})
    refused = alice.fail("put", case_id, str(bad / "Docs"))
    assert "reserved on Windows" in refused.stderr and "nothing was uploaded" in refused.stderr
    assert alice.json("ls", case_id) == []


def test_put_skips_symlinks_and_special_files_with_a_notice(lawyers, tmp_path):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Dimitrov")["case_id"]
    secret = tmp_path / "outside-secret.txt"
    secret.write_bytes(b"not part of the case")
    src = _tree(alice.workdir / "src", {"Case/a.txt": b"a"})
    (src / "Case" / "link.txt").symlink_to(secret)
    (src / "Case" / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(src / "Case" / "pipe")
    proc = alice.run("--json", "put", case_id, str(src / "Case"))
    assert [e["path"] for e in json.loads(proc.stdout)] == ["Case/a.txt"]
    assert "link.txt: symbolic link, not followed" in proc.stderr
    assert "linkdir: symbolic link, not followed" in proc.stderr
    assert "pipe: not a regular file" in proc.stderr


def test_progress_on_stderr_for_a_large_tree_and_quiet_with_json(lawyers):
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Eriksen")["case_id"]
    # a.pdf has a bar of its own inside the total's display; b.pdf is too small for one.
    big = {"Scans/a.pdf": os.urandom(5 << 20), "Scans/b.pdf": os.urandom(1 << 20)}
    src = _tree(alice.workdir / "src", big)
    alice.extra_env["TTY_COMPATIBLE"] = "1"  # Rich draws as it would on a terminal
    put = alice.run("put", case_id, str(src / "Scans")).stderr
    assert "put 2 files" in put and "put a.pdf" in put and "put b.pdf" not in put
    got = alice.run("get", case_id, "--all", "-o", "out").stderr
    assert "get 2 files" in got and "get a.pdf" in got
    assert _files_under(alice.workdir / "out") == big
    quiet = alice.run("--json", "get", case_id, "--all", "-o", "again")
    assert quiet.stderr == "" and len(json.loads(quiet.stdout)) == 2
