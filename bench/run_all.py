"""Every benchmark and reliability scenario, one after another: `make bench`.

    python -m bench.run_all [--quick] [--postgres URL] [--skip-reliability] [--with-pg-restart]

Each one runs in its own subprocess (so peak memory and failures stay its own), its output
streams through, and a summary table closes the run. The exit status is non-zero when any of
them failed. --quick shrinks sizes and durations for a smoke run; the figures in BENCHMARKS.md
come from the full run. With --postgres the PostgreSQL outage is a relay cut in front of the
database; --with-pg-restart restarts the machine's cluster instead, which disturbs everyone
using it, so it is never part of the default run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.harness import PG_DEFAULT, ROOT, table


def plan(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    q = args.quick
    size = ["--size-mib", "64" if q else "1024"]
    steps: list[tuple[str, list[str]]] = [
        ("crypto: cv1 vs age vs secretstream", ["bench/bench_crypto.py", *size]),
        ("server upload: peak RSS 16 MiB vs large", ["bench/bench_server_upload.py", *size]),
        ("transfer: CLI vs age vs plain HTTP", ["-m", "bench.bench_transfer", *size]),
        ("restic vs CaseVault: large file, folder of documents",
         ["-m", "bench.bench_vs_restic", *(["--small"] if q else [])]),
        ("metadata: 10,000-file list under load, logins",
         ["-m", "bench.bench_metadata_load", "--files", "1000" if q else "10000",
          "--seconds", "3" if q else "10", "--logins", "5" if q else "20"]),
        ("audit log: appends/s, proof times",
         ["bench/bench_log.py", "--sizes", "10000" if q else "1000000"]),
    ]
    if args.skip_reliability:
        return steps
    steps += [
        ("reliability: SIGKILL during uploads",
         ["-m", "bench.reliability_kill", "--kills", "3" if q else "20"]),
        ("reliability: concurrent clients, SQLite",
         ["-m", "bench.reliability_load", "--clients", "8" if q else "50",
          "--seconds", "10" if q else "60"]),
    ]
    if args.postgres:
        steps.append(("reliability: concurrent clients, PostgreSQL, 2 servers",
                      ["-m", "bench.reliability_load", "--clients", "8" if q else "50",
                       "--seconds", "10" if q else "60", "--servers", "2",
                       "--database-url", args.postgres]))
    if args.postgres or args.with_pg_restart:
        restart = ["--real-restart"] if args.with_pg_restart else []
        steps.append(("reliability: PostgreSQL gone and back under load",
                      ["-m", "bench.reliability_pg_restart", "--database-url",
                       args.postgres or PG_DEFAULT, *restart]))
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short durations")
    parser.add_argument("--postgres", default=None,
                        help=f"PostgreSQL base URL for the PostgreSQL runs (e.g. {PG_DEFAULT})")
    parser.add_argument("--skip-reliability", action="store_true")
    parser.add_argument("--with-pg-restart", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for label, cmd in plan(args):
        print(f"\n=== {label}\n$ python {' '.join(cmd)}", flush=True)
        start = time.monotonic()
        rc = subprocess.run([sys.executable, *cmd], cwd=ROOT).returncode
        rows.append([label, "ok" if rc == 0 else f"FAILED ({rc})",
                     f"{time.monotonic() - start:.0f}"])
    print("\n" + table(["step", "result", "seconds"], rows))
    return 0 if all(r[1] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
