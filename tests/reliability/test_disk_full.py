"""Disk full during an upload: the blob store is a size-capped tmpfs mounted for the test.

The client gets a clear 507 problem, nothing half-written stays behind, and the server keeps
serving: once the failed upload is aborted the space returns and a new upload round-trips.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.harness import BIN, ServerProc, client_env, new_lawyer, sha256_file, write_random_file
from bench.reliability_checks import check_store, temp_files
from client.crypto import LocalStateKey
from client.transfers import TransferStates

MIB = 1024 * 1024
TMPFS_MIB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "blobs"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MIB}m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True, text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-capped tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_disk_full_is_a_clear_507_and_leaves_nothing_half_written(
    tmp_path: Path, database_url: str, small_disk: Path, servers: list[ServerProc]
) -> None:
    server = ServerProc(tmp_path / "server", database_url=database_url,
                        extra_env={"CASEVAULT_BLOB_DIR": str(small_disk)}).start()
    servers.append(server)
    home = tmp_path / "home"
    vault, _ = new_lawyer(server.url, home)
    case_id = vault.create_case("R v Full Disk")

    # The attack on availability: a file larger than the whole blob filesystem.
    exhibit = tmp_path / "cctv.bin"
    write_random_file(exhibit, 40 * MIB)
    proc = subprocess.run([str(BIN / "casevault"), "put", case_id, str(exhibit)],
                          env=client_env(server, home), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr

    # The same failure as the server states it: 507 problem+json with a stable code.
    states = TransferStates(vault.keystore, LocalStateKey.of(vault.identity()))
    (transfer_key, state), = states
    token = vault.keystore.load_session()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{server.url}/v1/cases/{case_id}/uploads/{state['upload_id']}"
    status = httpx.get(base, headers=headers).json()
    stored = {p["part_number"] for p in status["parts"]}
    blob = vault.keystore.transfer_path(transfer_key, "blob")
    import hashlib

    # The client sends parts on several connections, so which part met the full disk first is
    # a race; whatever is missing is sent again in order. The whole file cannot fit, so one of
    # them must be refused, and the first refusal is the answer under test.
    r = None
    for missing in (n for n in range(status["part_count"]) if n not in stored):
        with blob.open("rb") as f:
            f.seek(missing * status["part_size"])
            part = f.read(status["part_size"])
        r = httpx.put(f"{base}/parts/{missing}", content=part, timeout=120,
                      headers={**headers, "X-Part-SHA256": hashlib.sha256(part).hexdigest()})
        if r.status_code != 200:
            break
    assert r is not None and r.status_code == 507, r and r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 507 and problem["code"]
    assert "Traceback" not in r.text and "Errno" not in r.text

    # Nothing half-written: no temporary blob, every stored part whole, no version row.
    assert temp_files(small_disk) == []
    check_store(database_url, small_disk)
    assert vault.ls(case_id) == []
    assert "Traceback" not in server.log_text()

    # The server keeps serving; aborting the upload gives the space back for a new one.
    assert httpx.delete(base, headers=headers).status_code == 204
    states.clear(transfer_key)
    blob.unlink()
    note = tmp_path / "attendance-note.txt"
    sha = write_random_file(note, 1 * MIB)
    (done,) = json.loads(subprocess.run(
        [str(BIN / "casevault"), "--json", "put", case_id, str(note)],
        env=client_env(server, home), capture_output=True, text=True, check=True, timeout=120,
    ).stdout)
    out = tmp_path / "back.txt"
    vault.get(case_id, done["file_id"], output=out)
    assert sha256_file(out) == sha
    check_store(database_url, small_disk)
