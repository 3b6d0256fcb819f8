"""What this client remembers of a case's files, held against every listing the server sends.

Each version a client verifies (listing, download, its own upload) and each tombstone it verifies
is kept in the keystore (Keystore.record_files_seen). A server that later lists a lower latest
version, drops a file it showed without a signed tombstone, or un-deletes a file whose tombstone
this client verified is rolling the case back: that is a hard IntegrityError naming the file,
raised before anything is shown or written.
"""

from __future__ import annotations

from typing import Any

from client import crypto


def check_listing(seen: dict[str, dict[str, Any]], versions: list[dict[str, Any]]) -> None:
    """Raise IntegrityError if the listing hides what `seen` says this client verified."""
    latest: dict[str, int] = {}
    deleted: set[str] = set()
    for v in versions:
        if not isinstance(v, dict):
            raise crypto.IntegrityError("file list of the case")
        fid, number = v.get("file_id"), v.get("version")
        if not isinstance(fid, str) or not isinstance(number, int):
            raise crypto.IntegrityError("file list of the case")
        latest[fid] = max(latest.get(fid, 0), number)
        if v.get("deleted"):
            deleted.add(fid)  # the tombstone itself is verified where the file is used
    for fid, fact in sorted(seen.items()):
        if fact["deleted"]:
            # Deletion is final on the server; a deleted file may be purged, never restored.
            if fid in latest and fid not in deleted:
                raise crypto.IntegrityError(
                    f"file {fid}: the server is hiding its deletion, which this client "
                    "verified earlier")
            continue
        if fid not in latest:
            raise crypto.IntegrityError(
                f"file {fid}: the server is hiding a file (this client verified version "
                f"{fact['version']}, and no signed deletion is listed)")
        if latest[fid] < fact["version"]:
            raise crypto.IntegrityError(
                f"file {fid}: the server is hiding a newer version (it lists version "
                f"{latest[fid]}, this client verified version {fact['version']})")
