"""T37: a court bundle that was tampered with must fail `verify-bundle` (exit 3, naming what),
even when the attacker re-computed every manifest of the bag; and a bundle of some files must
say nothing of the others.

A real lawyer exports from a real uvicorn through the real `casevault` command; the attacker
holds the bundle (an opponent, a courier, a compromised expert's machine) and rewrites its files
with the `bagit` library, as anyone could. `verify-bundle` runs with no server and no account.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import bagit
import cli_kit
import nacl.signing

from client.cli.exits import EXIT_INTEGRITY
from vault.protocol.checkpoint import (
    Checkpoint,
    NoteVerifier,
    parse_checkpoint_text,
    sign_checkpoint,
)

server = cli_kit.server
lawyers = cli_kit.lawyers

FILES = {
    "Evidence/cctv-still.jpg": b"\xff\xd8\xff CCTV still, 21:14" * 30,
    "Evidence/interview-transcript.txt": b"Q: Where were you on the night of...\n",
    "Privileged/advice-to-client.docx": b"PK counsel's advice: do not plead",
}


def _export(lawyer, *file_paths: str) -> tuple[Path, dict[str, str]]:
    case_id = lawyer.json("case", "create", "R v Okonkwo")["case_id"]
    src = lawyer.workdir / "src"
    for rel, data in FILES.items():
        path = src.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    put = lawyer.json("put", case_id, str(src / "Evidence"), str(src / "Privileged"))
    ids = {e["path"]: e["file_id"] for e in put}
    bundle = lawyer.workdir / "bundle"
    chosen = [ids[p] for p in file_paths] or ["--all"]
    lawyer.run("export", case_id, *chosen, "-o", str(bundle))
    return bundle, ids


def _verify(bundle: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CASEVAULT_HOME": str(bundle.parent / "expert-home"),
           "CASEVAULT_SERVER": "http://127.0.0.1:9"}  # nothing listens there
    return subprocess.run([str(cli_kit.BIN / "casevault"), "verify-bundle", str(bundle)],
                          env=env, capture_output=True, text=True, timeout=120)


def _rebag(bundle: Path) -> None:
    """What an attacker does after editing: every payload and tag manifest re-computed."""
    bagit.Bag(str(bundle)).save(manifests=True)
    bagit.Bag(str(bundle)).validate()  # the forged bag is a valid bag


def _index(bundle: Path) -> dict:
    return json.loads((bundle / "casevault/bundle.json").read_text())


def _write_index(bundle: Path, index: dict) -> None:
    (bundle / "casevault/bundle.json").write_text(json.dumps(index, indent=1, sort_keys=True))


def _refused(bundle: Path, *needles: str) -> str:
    proc = _verify(bundle)
    assert proc.returncode == EXIT_INTEGRITY, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "verified:" not in proc.stdout
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


def test_untouched_bundle_verifies(lawyers):
    (alice,) = lawyers("alice")
    bundle, _ = _export(alice)
    proc = _verify(bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verified: 3 file(s)")


def test_tampered_data_file_is_caught(lawyers):
    (alice,) = lawyers("alice")
    bundle, _ = _export(alice)
    (bundle / "data/Evidence/interview-transcript.txt").write_bytes(
        b"Q: Where were you on the night of...\nA: At home.\n")
    _refused(bundle, "the bag does not validate", "Evidence/interview-transcript.txt",
             "not the content the uploader signed")


def test_swapped_file_with_recomputed_bag_manifests_is_caught(lawyers):
    (alice,) = lawyers("alice")
    bundle, ids = _export(alice)
    (bundle / "data/Evidence/cctv-still.jpg").write_bytes(b"\xff\xd8\xff a different still")
    _rebag(bundle)
    err = _refused(bundle, f"file {ids['Evidence/cctv-still.jpg']}", "Evidence/cctv-still.jpg",
                   "not the content the uploader signed")
    assert "the bag does not validate" not in err  # the bag itself is consistent


def test_forged_manifest_signature_is_caught(lawyers):
    (alice,) = lawyers("alice")
    bundle, ids = _export(alice)
    index = _index(bundle)
    target = next(f for f in index["files"] if f["path"] == "Evidence/cctv-still.jpg")
    # The attacker signs the manifest with a key of their own (claiming the uploader's name).
    forger = nacl.signing.SigningKey.generate()
    body = base64.urlsafe_b64decode(target["manifest"]["body"] + "==")
    sig = forger.sign(b"cv1/manifest\x00" + body).signature
    target["manifest"]["sig"] = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    _write_index(bundle, index)
    _rebag(bundle)
    _refused(bundle, f"file {ids['Evidence/cctv-still.jpg']}", "signed manifest does not verify")


def test_dropped_inclusion_proof_is_caught(lawyers):
    (alice,) = lawyers("alice")
    bundle, ids = _export(alice)
    index = _index(bundle)
    target = next(f for f in index["files"] if f["path"] == "Evidence/interview-transcript.txt")
    assert target["audit"]
    for entry in target["audit"]:
        entry["proof"] = []
    _write_index(bundle, index)
    _rebag(bundle)
    _refused(bundle, f"file {ids['Evidence/interview-transcript.txt']}",
             "is not proven in the signed checkpoint")


def test_dropped_upload_entry_is_caught(lawyers):
    (alice,) = lawyers("alice")
    bundle, _ = _export(alice)
    index = _index(bundle)
    for f in index["files"]:
        f["audit"] = [e for e in f["audit"] if b"uploaded" not in base64.urlsafe_b64decode(
            (e.get("body") or e["entry"]) + "==")]
    _write_index(bundle, index)
    _rebag(bundle)
    _refused(bundle, "no proven audit entry records the upload")


def test_altered_checkpoint_is_caught(lawyers):
    (alice,) = lawyers("alice")
    bundle, _ = _export(alice)
    note = (bundle / "casevault/checkpoint.txt").read_text()
    size = note.split("\n")[1]
    (bundle / "casevault/checkpoint.txt").write_text(
        note.replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1))
    _rebag(bundle)
    _refused(bundle, "the checkpoint is not signed by the included log key")


def test_checkpoint_resigned_with_another_log_key_still_fails_the_proofs(lawyers):
    """An attacker who swaps in a log key of their own can sign any checkpoint, but not one
    the real entries' proofs lead to unless they build a whole other tree: here they re-sign
    a checkpoint with another root and the proofs fail. (A whole forged log under a forged key
    is why the log key must be compared with a pinned one: THREAT_MODEL T37.)"""
    (alice,) = lawyers("alice")
    bundle, _ = _export(alice)
    real = parse_checkpoint_text("\n".join(
        (bundle / "casevault/checkpoint.txt").read_text().split("\n")[:3]) + "\n")
    key = nacl.signing.SigningKey.generate()
    forged = Checkpoint(real.origin, real.size, bytes(32))
    (bundle / "casevault/checkpoint.txt").write_text(sign_checkpoint(forged, key))
    (bundle / "casevault/log.vkey").write_text(
        NoteVerifier(real.origin, bytes(key.verify_key)).vkey() + "\n")
    _rebag(bundle)
    _refused(bundle, "is not proven in the signed checkpoint")


def test_bundle_of_one_file_says_nothing_of_the_others(lawyers):
    (alice,) = lawyers("alice")
    bundle, ids = _export(alice, "Evidence/cctv-still.jpg")
    assert _verify(bundle).returncode == 0
    everything = b"".join(p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file())
    for path, file_id in ids.items():
        if path == "Evidence/cctv-still.jpg":
            continue
        for secret in (path, path.rsplit("/", 1)[-1], file_id):
            assert secret.encode() not in everything, secret
        assert FILES[path] not in everything
    info = (bundle / "bag-info.txt").read_text()
    assert "Payload-Oxum: " + f"{len(FILES['Evidence/cctv-still.jpg'])}.1" in info
    assert len(_index(bundle)["files"]) == 1
