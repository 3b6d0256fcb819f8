"""Invariants every reliability scenario checks after a fault: the database and the blob store
agree, nothing half-written is visible, and the audit log recomputes."""

from __future__ import annotations

import hashlib
from pathlib import Path

TEMP_PREFIX = ".tmp-"


class LossError(AssertionError):
    """A scenario found lost, corrupted, dangling or half-written data."""


def _blob_digest(*paths: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    for path in paths:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                size += len(block)
                h.update(block)
    return size, h.hexdigest()


def store_problems(database_url: str, blob_dir: Path) -> list[str]:
    """Rows that point at a missing, short or different blob (file versions and stored parts)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text(
                "SELECT file_id, version, blob_key, blob_size, blob_sha256 FROM file_versions"
            )).all()
            parts = conn.execute(sa.text(
                "SELECT upload_id, part_number, blob_key, size, sha256 FROM upload_parts"
            )).all()
            # A version uploaded in several parts is its part blobs in order.
            listed: dict[tuple[str, int], list[str]] = {}
            for file_id, version, key in conn.execute(sa.text(
                "SELECT file_id, version, blob_key FROM file_version_parts "
                "ORDER BY file_id, version, part_number"
            )):
                listed.setdefault((file_id, version), []).append(key)
    finally:
        engine.dispose()
    problems = []
    for kind, rows in (("version", versions), ("part", parts)):
        for owner, number, key, size, sha in rows:
            keys = listed.get((owner, number), [key]) if kind == "version" else [key]
            paths = [blob_dir / k[:2] / k for k in keys]
            missing = [k for k, p in zip(keys, paths, strict=True) if not p.is_file()]
            if missing:
                problems.append(f"{kind} {owner}/{number} points at missing blob {missing[0]}")
                continue
            got_size, got_sha = _blob_digest(*paths)
            if (got_size, got_sha) != (size, sha):
                problems.append(f"{kind} {owner}/{number}: blob {key} is {got_size} bytes "
                                f"{got_sha[:12]}, the row says {size} bytes {sha[:12]}")
    return problems


def temp_files(blob_dir: Path) -> list[Path]:
    """Half-written blobs: temporary files the store failed to remove."""
    return sorted(p for p in blob_dir.rglob(f"{TEMP_PREFIX}*") if p.is_file())


def check_store(database_url: str, blob_dir: Path) -> None:
    problems = store_problems(database_url, blob_dir)
    if problems:
        raise LossError("; ".join(problems[:10]))
