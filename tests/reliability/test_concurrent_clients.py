"""Concurrent lawyers doing a mixed workflow (bench/reliability_load.py runs 50 for a minute):
no 5xx, no lost or corrupted file, an audit log that verifies. On PostgreSQL the lawyers are
spread over two server processes sharing the database and the blob folder."""

from __future__ import annotations

from pathlib import Path

from bench import reliability_load


def test_concurrent_mixed_workflow_loses_nothing(tmp_path: Path, database_url: str) -> None:
    servers = 1 if database_url.startswith("sqlite") else 2
    report = reliability_load.run(6, 6.0, database_url, servers, tmp_path, log=lambda _: None)
    assert reliability_load.failures(report) == []
    assert report.operations["put"] > 0 and report.files == report.operations["put"]
    assert report.operations["get"] + report.operations["get_shared"] > 0
