"""Upload and download through the real `casevault` CLI against a real `casevault-server serve`
on 127.0.0.1, side by side with `age` (file to local disk) and with a plain HTTP transfer of the
same bytes to the same server process (no encryption).

    python -m bench.bench_transfer [--size-mib 1024] [--small-mib 16] [--cheap-kdf] [--dir DIR]

The plain transfer is an httpx client sending the raw file in the client's part size to the
production upload-part route (each part with the SHA-256 header the route requires), completing
it with a signed manifest, then streaming it back from the download route: the transport and
server bookkeeping cost without any cryptography on the content. Nothing is added to the app.

Peak memory: the CLI's own peak RSS comes from wait4(); the server's is VmHWM of a fresh server
process per size, read after both CLI transfers. Exit status is 0 when every transfer verified
(the goals are reported, not enforced: this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import (
    BIN,
    ServerProc,
    client_env,
    new_lawyer,
    process_cpu_s,
    run_measured,
    sha256_file,
    table,
    vm_hwm_kib,
    write_random_file,
)

MIB = 1024 * 1024
GOAL_RATIO = 0.7
GOAL_MEM_DELTA_MIB = 64


def _age(src: Path, work: Path) -> dict[str, float]:
    """age to local disk, and the same followed by an fsync of its output: the CLI's download
    fsyncs the file before renaming it into place, and the server fsyncs every part."""
    key = work / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    enc, dec = work / "file.age", work / "file.age.out"
    up = run_measured(["age", "-r", recipient, "-o", str(enc), str(src)], os.environ)
    up_sync = run_measured(["sync", str(enc)], os.environ)
    down = run_measured(["age", "-d", "-i", str(key), "-o", str(dec), str(enc)], os.environ)
    down_sync = run_measured(["sync", str(dec)], os.environ)
    if sha256_file(dec) != sha256_file(src):
        raise RuntimeError("age round trip changed the file")
    enc.unlink()
    dec.unlink()
    return {"up_s": up.seconds, "down_s": down.seconds,
            "up_fsync_s": up.seconds + up_sync.seconds,
            "down_fsync_s": down.seconds + down_sync.seconds,
            "up_cpu_s": up.cpu_s, "down_cpu_s": down.cpu_s,
            "up_rss_kib": up.rss_kib, "down_rss_kib": down.rss_kib}


def _cli(server: ServerProc, home: Path, case_id: str, src: Path, work: Path,
         expected_sha: str) -> dict[str, float]:
    env = client_env(server, home)
    cpu0 = process_cpu_s(server.pid)
    up = run_measured([str(BIN / "casevault"), "--json", "put", case_id, str(src)], env)
    cpu1 = process_cpu_s(server.pid)
    (uploaded,) = json.loads(up.stdout)
    if uploaded["sha256"] != expected_sha:
        raise RuntimeError("the CLI reported another SHA-256 than the file's")
    dest = work / "cli.out"
    down = run_measured([str(BIN / "casevault"), "--json", "get", case_id,
                         uploaded["file_id"], "-o", str(dest)], env)
    cpu2 = process_cpu_s(server.pid)
    if sha256_file(dest) != expected_sha:
        raise RuntimeError("the CLI download does not match the uploaded file")
    dest.unlink()
    return {"up_s": up.seconds, "down_s": down.seconds,
            "up_cpu_s": up.cpu_s, "down_cpu_s": down.cpu_s,
            "up_server_cpu_s": cpu1 - cpu0, "down_server_cpu_s": cpu2 - cpu1,
            "up_rss_kib": up.rss_kib, "down_rss_kib": down.rss_kib}


def _plain(server: ServerProc, vault, case_id: str, src: Path, work: Path) -> dict[str, float]:
    """Raw bytes over the same routes; a manifest is still signed because completion needs it."""
    from client.files.upload import PART_SIZE
    from vault.protocol.encoding import b64e
    from vault.protocol.ids import new_id
    from vault.protocol.records import LABEL_MANIFEST, manifest_body

    size = src.stat().st_size
    ctx = vault._cases().load(case_id)
    identity = vault.identity()
    file_id = new_id()
    headers = {"Authorization": f"Bearer {vault.keystore.load_session()}"}
    base = f"/v1/cases/{case_id}"
    meta, wrapped = b64e(b"\x00" * 64), b64e(b"\x00" * 72)
    with httpx.Client(base_url=server.url, headers=headers, timeout=600) as http:
        cpu0 = process_cpu_s(server.pid)
        start = time.perf_counter()
        up = http.post(f"{base}/uploads", json={"file_id": file_id, "version": 1,
                                                 "total_size": size, "part_size": PART_SIZE})
        up.raise_for_status()
        upload_id = up.json()["upload_id"]
        whole = hashlib.sha256()
        with src.open("rb") as f:
            n = 0
            while data := f.read(PART_SIZE):
                whole.update(data)
                r = http.put(f"{base}/uploads/{upload_id}/parts/{n}", content=data,
                             headers={"X-Part-SHA256": hashlib.sha256(data).hexdigest()})
                r.raise_for_status()
                n += 1
        body = manifest_body(
            case_id=case_id, file_id=file_id, version=1, generation=ctx.generation,
            membership_seq=ctx.state.head.seq, blob_size=size, blob_sha256=whole.hexdigest(),
            meta_hash=hashlib.sha256(b"\x00" * 64).hexdigest(),
            wrapped_key_hash=hashlib.sha256(b"\x00" * 72).hexdigest(),
            uploader=identity.user_id, time=int(time.time()))
        r = http.post(f"{base}/uploads/{upload_id}/complete",
                      json={"manifest": identity.sign(LABEL_MANIFEST, body),
                            "encrypted_metadata": meta, "wrapped_key": wrapped})
        r.raise_for_status()
        t_up = time.perf_counter() - start
        cpu1 = process_cpu_s(server.pid)
        dest = work / "plain.out"
        start = time.perf_counter()
        got = hashlib.sha256()
        with http.stream("GET", f"{base}/files/{file_id}/versions/1/blob") as resp, \
                dest.open("wb") as out:
            resp.raise_for_status()
            for chunk in resp.iter_bytes(MIB):
                got.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        t_down = time.perf_counter() - start
        cpu2 = process_cpu_s(server.pid)
    if got.hexdigest() != whole.hexdigest():
        raise RuntimeError("the plain download does not match the upload")
    dest.unlink()
    return {"up_s": t_up, "down_s": t_down,
            "up_server_cpu_s": cpu1 - cpu0, "down_server_cpu_s": cpu2 - cpu1}


def run_size(size: int, root: Path, cheap_kdf: bool) -> dict[str, object]:
    work = root / f"size-{size}"
    work.mkdir()
    src = work / "input.bin"
    expected = write_random_file(src, size)
    result: dict[str, object] = {"size": size, "age": _age(src, work)}
    server = ServerProc(work / "server", cheap_kdf=cheap_kdf).start()
    try:
        home = work / "home"
        vault, _ = new_lawyer(server.url, home)
        case_id = vault.create_case("R v Bench")
        result["cli"] = _cli(server, home, case_id, src, work, expected)
        result["server_hwm_kib"] = vm_hwm_kib(server.pid)
        result["plain"] = _plain(server, vault, case_id, src, work)
    finally:
        server.stop()
    shutil.rmtree(work)
    return result


def _mibs(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:.0f}"


def report(results: list[dict]) -> tuple[str, dict[str, object]]:
    rows = []
    big, small = results[-1], results[0]
    size = big["size"]
    cpu_rows = []
    for way, label in (("up", "upload / encrypt"), ("down", "download / decrypt")):
        cli, age, plain = big["cli"][f"{way}_s"], big["age"][f"{way}_s"], big["plain"][f"{way}_s"]
        age_sync = big["age"][f"{way}_fsync_s"]
        rows.append([label, f"{cli:.2f}", _mibs(size, cli), f"{age:.2f}", _mibs(size, age),
                     f"{age / cli:.2f}x", f"{age_sync:.2f}", f"{age_sync / cli:.2f}x",
                     f"{plain:.2f}", _mibs(size, plain), f"{plain / cli:.2f}x"])
        client_cpu, server_cpu = big["cli"][f"{way}_cpu_s"], big["cli"][f"{way}_server_cpu_s"]
        cpu_rows.append([label, f"{client_cpu:.2f}", f"{server_cpu:.2f}",
                         f"{client_cpu + server_cpu:.2f}",
                         f"{big['plain'][f'{way}_server_cpu_s']:.2f}",
                         f"{big['age'][f'{way}_cpu_s']:.2f}", f"{age:.2f}"])
    speed = table(["direction", "cli s", "cli MiB/s", "age s", "age MiB/s", "cli/age speed",
                   "age+fsync s", "cli/age+fsync", "plain s", "plain MiB/s",
                   "cli/plain speed"], rows)
    cpu = table(["direction", "CLI cpu s", "server cpu s", "CLI+server cpu s",
                 "server cpu s, plain", "age cpu s", "age wall s"], cpu_rows)
    mem_rows = []
    for who, key in (("CLI put", ("cli", "up_rss_kib")), ("CLI get", ("cli", "down_rss_kib")),
                     ("age encrypt", ("age", "up_rss_kib")),
                     ("age decrypt", ("age", "down_rss_kib"))):
        a, b = small[key[0]][key[1]] / 1024, big[key[0]][key[1]] / 1024
        mem_rows.append([who, f"{a:.0f}", f"{b:.0f}", f"{b - a:+.0f}"])
    a, b = small["server_hwm_kib"] / 1024, big["server_hwm_kib"] / 1024
    mem_rows.append(["server (VmHWM)", f"{a:.0f}", f"{b:.0f}", f"{b - a:+.0f}"])
    memory = table(["process", f"peak MiB @ {small['size'] // MIB} MiB",
                    f"peak MiB @ {size // MIB} MiB", "delta MiB"], mem_rows)
    up_ratio = big["age"]["up_s"] / big["cli"]["up_s"]
    down_ratio = big["age"]["down_s"] / big["cli"]["down_s"]
    deltas = [float(r[3]) for r in mem_rows if not r[0].startswith("age")]
    summary = {
        "size_mib": size // MIB,
        "ratio_vs_age_up": round(up_ratio, 3),
        "ratio_vs_age_down": round(down_ratio, 3),
        "max_mem_delta_mib": max(deltas),
        "goal_speed_met": up_ratio >= GOAL_RATIO and down_ratio >= GOAL_RATIO,
        "goal_memory_met": max(deltas) < GOAL_MEM_DELTA_MIB,
    }
    text = (f"Transfer of {size // MIB} MiB (speed: higher is better; ratios are speed ratios, "
            f"goal >= {GOAL_RATIO}x age)\n{speed}\n\nCPU seconds (user + system) for the "
            f"same transfers\n{cpu}\n\nPeak memory\n{memory}\n\n"
            f"goals: speed {'met' if summary['goal_speed_met'] else 'NOT met'}, memory "
            f"{'met' if summary['goal_memory_met'] else 'NOT met'} "
            f"(delta < {GOAL_MEM_DELTA_MIB} MiB)")
    return text, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small-mib", type=int, default=16)
    parser.add_argument("--cheap-kdf", action="store_true",
                        help="test-only Argon2 cost for the account (default: the real cost)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (on disk)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("age") is None:
        print("age is not installed (apt-get install age)", file=sys.stderr)
        return 1
    # The in-process client registering the account reads the same switch as the CLI.
    if args.cheap_kdf:
        os.environ["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    else:
        os.environ.pop("CASEVAULT_TEST_INSECURE_KDF", None)
    root = Path(tempfile.mkdtemp(prefix="cv-transfer-", dir=args.dir))
    try:
        results = [run_size(s * MIB, root, args.cheap_kdf)
                   for s in (args.small_mib, args.size_mib)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text, summary = report(results)
    print(text)
    if args.json_out:
        args.json_out.write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
