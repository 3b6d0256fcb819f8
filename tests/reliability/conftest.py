"""Fault scenarios against a real `casevault-server serve` process: the shared plumbing lives in
bench/ (the long versions of these scenarios are scripts there), so the repository root must be
importable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import ServerProc  # noqa: E402


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    # The in-process client reads the same test-only switch as the server it starts.
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    """Append ServerProc objects; every one still running is stopped after the test."""
    started: list[ServerProc] = []
    yield started
    for server in started:
        server.stop()
