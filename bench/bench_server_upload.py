"""Server memory and throughput for large transfers: a real `casevault-server serve` (uvicorn) on
127.0.0.1, an upload in parts over httpx, completion with a signed manifest, a streamed download.

    python -m bench.bench_server_upload [--size-mib 1024] [--small-mib 16] [--part-mib 8]

The server never sees plaintext, so the bytes sent are random (they stand for ciphertext). Each
size gets a fresh server process, so its VmHWM (peak resident set) belongs to that size alone.
The goal: the server's peak memory does not grow with the file size. Peer measured in the same
run: writing the same number of bytes to a local file with fsync (the floor for "store a blob").
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import nacl.signing
import pyotp

from bench.harness import ServerProc, table, vm_hwm_kib
from vault.protocol.encoding import b64e
from vault.protocol.ids import new_id
from vault.protocol.membership import membership_entry_body
from vault.protocol.records import (
    KEM_PK_BYTES,
    LABEL_GRANT,
    LABEL_IDENTITY,
    LABEL_MANIFEST,
    LABEL_MEMBERSHIP,
    ZERO_HASH,
    grant_body,
    identity_body,
    manifest_body,
    sign_record,
    verify_identity_record,
)

MIB = 1024 * 1024


class Uploader:
    """One registered user with a case, talking raw HTTP to the server."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=600)
        self.key = nacl.signing.SigningKey.generate()
        self.user_id = new_id()
        self._register()
        self.case_id = self._create_case()

    def _register(self) -> None:
        name = f"bench-{secrets.token_hex(4)}"
        identity = sign_record(
            LABEL_IDENTITY,
            identity_body(
                user_id=self.user_id,
                username=name,
                sign_pk=bytes(self.key.verify_key),
                kem_pk=secrets.token_bytes(KEM_PK_BYTES),
                created_at=int(time.time()),
            ),
            self.key,
        )
        self.fingerprint = verify_identity_record(identity).fingerprint_hex
        auth_key = b64e(secrets.token_bytes(32))
        r = self.http.post(
            "/v1/accounts/register",
            json={
                "username": name,
                "kdf": {"salt": b64e(secrets.token_bytes(16)), "ops": 1, "mem": 8 * MIB},
                "auth_key": auth_key,
                "identity": identity,
                "identity_wrapped_kek": b64e(secrets.token_bytes(120)),
                "identity_wrapped_recovery": b64e(secrets.token_bytes(120)),
                "recovery_auth": b64e(secrets.token_bytes(32)),
            },
        )
        r.raise_for_status()
        secret = parse_qs(urlparse(r.json()["totp_uri"]).query)["secret"][0]
        r = self.http.post(
            "/v1/accounts/activate",
            json={"username": name, "auth_key": auth_key, "totp": pyotp.TOTP(secret).now()},
        )
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def _create_case(self) -> str:
        case_id = new_id()
        entry = membership_entry_body(
            case_id=case_id,
            seq=0,
            prev_hash=ZERO_HASH,
            action="create",
            subject=self.user_id,
            subject_fp=self.fingerprint,
            role="owner",
            author=self.user_id,
            time=int(time.time()),
            generation=0,
        )
        grant = grant_body(
            case_id=case_id,
            generation=0,
            member=self.user_id,
            member_fp=self.fingerprint,
            sealed_key=secrets.token_bytes(1200),
            granter=self.user_id,
            time=int(time.time()),
        )
        r = self.http.post(
            "/v1/cases",
            json={
                "case_id": case_id,
                "encrypted_info": b64e(secrets.token_bytes(64)),
                "entry": sign_record(LABEL_MEMBERSHIP, entry, self.key),
                "grant": sign_record(LABEL_GRANT, grant, self.key),
            },
        )
        r.raise_for_status()
        return case_id

    def upload(self, size: int, part_size: int) -> tuple[str, str, float]:
        """Send `size` random bytes in parts; returns (file id, sha256 hex, seconds)."""
        file_id = new_id()
        base = f"/v1/cases/{self.case_id}"
        start = time.perf_counter()
        r = self.http.post(
            f"{base}/uploads",
            json={"file_id": file_id, "version": 1, "total_size": size, "part_size": part_size},
        )
        r.raise_for_status()
        upload_id, count = r.json()["upload_id"], r.json()["part_count"]
        whole = hashlib.sha256()
        for n in range(count):
            part = os.urandom(min(part_size, size - n * part_size))
            whole.update(part)
            r = self.http.put(
                f"{base}/uploads/{upload_id}/parts/{n}",
                content=part,
                headers={"X-Part-SHA256": hashlib.sha256(part).hexdigest()},
            )
            r.raise_for_status()
        meta, wrapped = secrets.token_bytes(200), secrets.token_bytes(72)
        body = manifest_body(
            case_id=self.case_id,
            file_id=file_id,
            version=1,
            generation=0,
            membership_seq=0,
            blob_size=size,
            blob_sha256=whole.hexdigest(),
            meta_hash=hashlib.sha256(meta).hexdigest(),
            wrapped_key_hash=hashlib.sha256(wrapped).hexdigest(),
            uploader=self.user_id,
            time=int(time.time()),
        )
        r = self.http.post(
            f"{base}/uploads/{upload_id}/complete",
            json={
                "manifest": sign_record(LABEL_MANIFEST, body, self.key),
                "encrypted_metadata": b64e(meta),
                "wrapped_key": b64e(wrapped),
            },
        )
        r.raise_for_status()
        return file_id, whole.hexdigest(), time.perf_counter() - start

    def download(self, file_id: str) -> tuple[str, float]:
        url = f"/v1/cases/{self.case_id}/files/{file_id}/versions/1/blob"
        start = time.perf_counter()
        digest = hashlib.sha256()
        with self.http.stream("GET", url) as r:
            r.raise_for_status()
            for chunk in r.iter_bytes(MIB):
                digest.update(chunk)
        return digest.hexdigest(), time.perf_counter() - start


def local_write_seconds(path: Path, size: int, block: int) -> float:
    """The peer: the same bytes written to a local file and fsynced."""
    start = time.perf_counter()
    with open(path, "wb") as f:
        left = size
        while left:
            f.write(os.urandom(min(block, left)))
            left -= min(block, left)
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def measure(workdir: Path, size: int, part_size: int) -> dict[str, float]:
    server = ServerProc(data_dir=workdir / f"server-{size}").start()
    try:
        idle_kib = vm_hwm_kib(server.pid)
        client = Uploader(server.url)
        file_id, sent, up_s = client.upload(size, part_size)
        got, down_s = client.download(file_id)
        if got != sent:
            raise SystemExit(f"download of {size} bytes did not match what was sent")
        peak_kib = vm_hwm_kib(server.pid)
        client.http.close()
    finally:
        server.stop()
    peer_s = local_write_seconds(workdir / "peer.bin", size, part_size)
    return {
        "idle": idle_kib / 1024,
        "peak": peak_kib / 1024,
        "up": up_s,
        "down": down_s,
        "peer": peer_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small-mib", type=int, default=16)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = {
            mib: measure(Path(tmp), mib * MIB, args.part_mib * MIB)
            for mib in (args.small_mib, args.size_mib)
        }
    rows = []
    for mib, r in results.items():
        rows.append(
            [
                f"{mib} MiB",
                f"{r['idle']:.0f}",
                f"{r['peak']:.0f}",
                f"{mib / r['up']:.0f}",
                f"{mib / r['down']:.0f}",
                f"{mib / r['peer']:.0f}",
                f"{r['up'] / r['peer']:.2f}x",
            ]
        )
    print(
        table(
            [
                "size",
                "server idle MiB",
                "server peak MiB",
                "upload MiB/s",
                "download MiB/s",
                "local write MiB/s",
                "upload vs local write",
            ],
            rows,
        )
    )
    small, large = results[args.small_mib], results[args.size_mib]
    growth = large["peak"] / small["peak"]
    print(
        f"server peak RSS, {args.size_mib} MiB vs {args.small_mib} MiB: {growth:.2f}x "
        f"({large['peak'] - small['peak']:+.0f} MiB) for {args.size_mib // args.small_mib}x "
        f"the data"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
