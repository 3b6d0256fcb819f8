"""`export` and `verify-bundle` through the real `casevault` command against a real uvicorn:
a small tree is put, exported as a court bundle, and the bundle verifies offline (DESIGN.md 8).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import bagit
from conftest import BIN

TREE = {
    "Evidence/photos/IMG_0001.jpg": b"\xff\xd8\xff photo one" * 40,
    "Evidence/witness-list.txt": b"W1, W2, W3\n",
    "Pleadings/defence-statement.pdf": b"%PDF defence statement",
}


def _put_tree(lawyer) -> tuple[str, list[dict]]:
    case_id = lawyer.json("case", "create", "R v Lindqvist")["case_id"]
    src = lawyer.workdir / "src"
    for rel, data in TREE.items():
        path = src.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    put = lawyer.json("put", case_id, str(src / "Evidence"), str(src / "Pleadings"))
    return case_id, put


def offline_verify(bundle: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`verify-bundle` as a court expert runs it: no server, no account, an empty home."""
    home = cwd / "expert-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEVAULT_")}
    env["CASEVAULT_HOME"] = str(home)
    env["CASEVAULT_SERVER"] = "http://127.0.0.1:9"  # nothing listens: offline for certain
    return subprocess.run([str(BIN / "casevault"), "verify-bundle", str(bundle)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_export_all_verifies_offline_and_is_a_valid_bag(lawyers):
    (alice,) = lawyers("alice")
    case_id, put = _put_tree(alice)
    bundle = alice.workdir / "bundle"
    result = alice.json("export", case_id, "--all", "-o", str(bundle))
    assert sorted(f["path"] for f in result["files"]) == sorted(TREE)

    for rel, data in TREE.items():
        assert (bundle / "data" / rel).read_bytes() == data
    bag = bagit.Bag(str(bundle))
    bag.validate()
    assert set(bag.algorithms) == {"sha256", "sha512"}
    assert (bundle / "tagmanifest-sha256.txt").read_text().count("casevault/") >= 6

    proc = offline_verify(bundle, alice.workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verified: 3 file(s)")
    assert alice.username in proc.stdout

    report = (bundle / "casevault" / "custody-report.html").read_text()
    for rel in TREE:
        assert rel in report
    assert "902(14)" in report and "Qualification" in report
    assert "http://" not in report and "https://" not in report and "<script" not in report

    # The bundle carries what an expert needs for openssl: each manifest's signed bytes.
    ids = {e["path"]: e["file_id"] for e in put}
    manifest_msg = bundle / "casevault/openssl/manifests" / f"{ids[sorted(TREE)[0]]}.msg"
    assert manifest_msg.read_bytes().startswith(b"cv1/manifest\x00")


def test_export_of_a_folder_and_json_verify(lawyers):
    (alice,) = lawyers("alice")
    case_id, _ = _put_tree(alice)
    bundle = alice.workdir / "pleadings"
    alice.run("export", case_id, "--folder", "Pleadings", "-o", str(bundle))
    assert sorted(p.relative_to(bundle / "data").as_posix()
                  for p in (bundle / "data").rglob("*") if p.is_file()) == [
        "Pleadings/defence-statement.pdf"]
    verified = alice.json("verify-bundle", str(bundle))
    assert verified["verified"] is True
    assert [f["path"] for f in verified["files"]] == ["Pleadings/defence-statement.pdf"]

    # An existing directory is never written into.
    proc = alice.fail("export", case_id, "--all", "-o", str(bundle))
    assert "already exists" in proc.stderr
    json.loads(json.dumps(verified))  # plain JSON throughout
