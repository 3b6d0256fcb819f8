"""The CLI harness of tests/cli (a real `casevault-server` under uvicorn, lawyers driving the
real `casevault` console script) for adversarial tests that attack through the command line.

tests/cli/conftest.py is loaded under its own module name so its fixtures can be re-bound by
name in a test module of this folder (`server`, `lawyers`, `laptop`), without a second copy.
"""

from __future__ import annotations

import importlib.util
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "cli_harness", Path(__file__).resolve().parents[1] / "cli" / "conftest.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
sys.modules["cli_harness"] = harness  # its dataclasses look their module up by name
_spec.loader.exec_module(harness)

server = harness.server
lawyers = harness.lawyers
laptop = harness.laptop
BIN = harness.BIN


def run_on_terminal(lawyer, *args: str, answer: str | None = None,
                    timeout: float = 120.0) -> tuple[int, str]:
    """Run `casevault` with stdin, stdout and stderr on a pseudo-terminal, as a lawyer at a
    keyboard would; when the output asks "[y/N]", type `answer`. Returns (exit code, screen)."""
    main, child = pty.openpty()
    proc = subprocess.Popen([str(BIN / "casevault"), *args], env=lawyer.env(),
                            cwd=lawyer.workdir, stdin=child, stdout=child, stderr=child,
                            close_fds=True)
    os.close(child)
    screen = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                screen += data
                if answer is not None and not answered and b"[y/N]" in screen:
                    os.write(main, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"casevault {' '.join(args)} hung:\n{screen.decode()}")
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return code, screen.decode("utf-8", "replace")
