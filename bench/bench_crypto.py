"""File-to-file encrypt + decrypt throughput of cv1, against `age` and libsodium secretstream.

    python bench/bench_crypto.py [--size-mib 1024] [--dir DIR]

Every run works on the same random input file. Each measurement runs in its own subprocess so
its peak RSS (ru_maxrss of that child) is its own. The script installs nothing: when `age` is
not on PATH it says so and carries on with the other two.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDS = {"case_id": "0" * 32, "file_id": "1" * 32, "version": 1}
SS_CHUNK = 64 * 1024
BLOCK = 1024 * 1024


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- the three contenders (child)


def cv1(op: str, src: Path, dst: Path, key: bytes) -> None:
    from client.crypto import decrypt_to_path, encrypt_stream

    if op == "encrypt":
        with open(src, "rb") as s, open(dst, "wb") as d:
            res = encrypt_stream(s, d, key, **IDS)
        (dst.parent / "cv1.size").write_text(f"{res.plaintext_size} {res.plaintext_sha256}")
    else:
        size, sha = (dst.parent / "cv1.size").read_text().split()
        with open(src, "rb") as s:
            decrypt_to_path(
                s, dst, key, plaintext_size=int(size), expected_sha256=sha, overwrite=True, **IDS
            )


def cv1_stream(op: str, src: Path, dst: Path, key: bytes) -> None:
    """cv1 without decrypt_to_path's fsync and rename: what age and secretstream do here."""
    from client.crypto import decrypt_stream

    if op == "encrypt":
        cv1(op, src, dst, key)
        return
    size, _ = (dst.parent / "cv1.size").read_text().split()
    with open(src, "rb") as s, open(dst, "wb") as d:
        decrypt_stream(s, d, key, plaintext_size=int(size), **IDS)


def secretstream(op: str, src: Path, dst: Path, key: bytes) -> None:
    import nacl.bindings as b

    state = b.crypto_secretstream_xchacha20poly1305_state()
    abytes = b.crypto_secretstream_xchacha20poly1305_ABYTES
    with open(src, "rb") as s, open(dst, "wb") as d:
        if op == "encrypt":
            d.write(b.crypto_secretstream_xchacha20poly1305_init_push(state, key))
            chunk = s.read(SS_CHUNK)
            while True:
                nxt = s.read(SS_CHUNK)
                tag = (
                    b.crypto_secretstream_xchacha20poly1305_TAG_FINAL
                    if not nxt
                    else b.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
                )
                d.write(b.crypto_secretstream_xchacha20poly1305_push(state, chunk, None, tag))
                if not nxt:
                    break
                chunk = nxt
        else:
            header = s.read(b.crypto_secretstream_xchacha20poly1305_HEADERBYTES)
            b.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
            while block := s.read(SS_CHUNK + abytes):
                msg, tag = b.crypto_secretstream_xchacha20poly1305_pull(state, block, None)
                d.write(msg)
                if tag == b.crypto_secretstream_xchacha20poly1305_TAG_FINAL:
                    break


def age(op: str, src: Path, dst: Path, key: bytes) -> None:
    identity = dst.parent / "age.key"
    if op == "encrypt":
        if not identity.exists():
            subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(["age", "-r", recipient, "-o", str(dst), str(src)], check=True)
    else:
        subprocess.run(["age", "-d", "-i", str(identity), "-o", str(dst), str(src)], check=True)


RUNNERS = {"cv1": cv1, "cv1-no-fsync": cv1_stream, "age": age, "secretstream": secretstream}


def child(name: str, op: str, src: str, dst: str, key_hex: str) -> None:
    start = time.perf_counter()
    RUNNERS[name](op, Path(src), Path(dst), bytes.fromhex(key_hex))
    elapsed = time.perf_counter() - start
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # age runs as a child
    print(json.dumps({"seconds": elapsed, "peak_rss_kib": max(self_rss, kids_rss)}))


# ---------------------------------------------------------------- parent


def measure(name: str, op: str, src: Path, dst: Path, key: bytes, repeat: int) -> dict:
    """Best of `repeat` runs; dirty pages of earlier steps are flushed first so no contender
    pays for another's write-back."""
    runs = []
    for _ in range(repeat):
        os.sync()
        runs.append(_measure_once(name, op, src, dst, key))
    return min(runs, key=lambda run: run["seconds"])


def _measure_once(name: str, op: str, src: Path, dst: Path, key: bytes) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, op, str(src), str(dst), key.hex()],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2, help="runs per step, best is kept")
    parser.add_argument("--dir", default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    names = ["cv1", "cv1-no-fsync", "secretstream"]
    if shutil.which("age") and shutil.which("age-keygen"):
        names.insert(2, "age")
    else:
        print(
            "age is not installed (Debian: apt-get install age); comparing cv1 with "
            "secretstream only",
            file=sys.stderr,
        )
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="casevault-bench-") as tmp:
        work = Path(tmp)
        src = work / "plain.bin"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(BLOCK))
        want = _sha256(src)
        print(f"input: {args.size_mib} MiB of random bytes, sha256 {want[:16]}...")
        results: dict[str, dict[str, dict]] = {}
        for name in names:
            sub = work / name
            sub.mkdir()
            key = os.urandom(32)
            enc, dec = sub / "blob", sub / "plain.out"
            results[name] = {
                "encrypt": measure(name, "encrypt", src, enc, key, args.repeat),
                "decrypt": measure(name, "decrypt", enc, dec, key, args.repeat),
            }
            if _sha256(dec) != want:
                sys.exit(f"{name}: decrypted output differs from the input")
            results[name]["overhead"] = enc.stat().st_size - size
            enc.unlink()
            dec.unlink()

    mb = size / 1e6
    print(
        f"{'scheme':<13}{'encrypt MB/s':>13}{'decrypt MB/s':>13}{'peak RSS enc':>14}"
        f"{'peak RSS dec':>14}{'overhead B':>12}"
    )
    for name, res in results.items():
        e, d = res["encrypt"], res["decrypt"]
        print(
            f"{name:<13}{mb / e['seconds']:>13.0f}{mb / d['seconds']:>13.0f}"
            f"{e['peak_rss_kib'] / 1024:>11.1f}MiB{d['peak_rss_kib'] / 1024:>11.1f}MiB"
            f"{res['overhead']:>12}"
        )
    base = results["cv1"]
    for name in results:
        if name.startswith("cv1"):
            continue
        r = results[name]
        print(
            f"cv1 / {name}: encrypt {r['encrypt']['seconds'] / base['encrypt']['seconds']:.2f}x"
            f", decrypt {r['decrypt']['seconds'] / base['decrypt']['seconds']:.2f}x "
            "(above 1 means cv1 is faster)"
        )


if __name__ == "__main__":
    main()
