"""Many files into one directory: `get` of several ids, of a folder, or of the whole case.

The case is loaded and listed once. Every file is verified (manifest, metadata, path) before
anything is written, and every output path is planned and checked first: two files that would
be one on a case-insensitive disk, a symbolic link in the way, or an existing file with other
bytes stop the whole transfer before the first byte is written. A file that fails
verification (at planning or when its content is decrypted) is reported and not written, and
the others are still fetched: a lawyer leaving for a hearing gets every file that verifies,
and the command ends with exit 3 naming the ones that did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client import crypto
from client.cases import CaseContext
from client.errors import ServerCopyDamaged, VaultError
from client.files import folders
from client.files.download import Downloads
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id
from vault.protocol.paths import PathError, is_inside, split_path
from vault.protocol.records import Manifest


@dataclass
class BulkResult:
    """Files written (or found already there), and files left out with the reason."""

    written: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def integrity_failed(self) -> bool:
        return any(f["verification"] for f in self.failed)


@dataclass
class _Item:
    file_id: str
    manifest: Manifest
    file_key: bytes
    meta: crypto.FileMetadata
    case_path: str
    placement: folders.Placement | None = None


class BulkDownloads(Downloads):
    """Download many files of a case into one directory, keeping their folders."""

    def get_many(self, case_id: str, *, output: Path, file_ids: list[str] | None = None,
                 folder: str | None = None) -> BulkResult:
        """Several ids, one folder (`folder`), or the whole case (neither)."""
        for fid in file_ids or ():
            if not is_valid_id(fid):
                raise VaultError(f"{fid!r} is not a file id (32 hex digits)")
        root = Path(output)
        if root.exists() and not root.is_dir():
            raise VaultError(f"{root} is not a directory")
        ctx = self.cases.load(case_id)
        result = BulkResult()
        items = self._verified(ctx, file_ids, folder, result)
        self._plan(root, items, folder)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        todo = [i for i in items if i.placement and not i.placement.present]
        total = sum(i.manifest.blob_size for i in todo)
        with self.session.bar(f"get {len(items)} files", total) as overall:
            for item in items:
                entry = self._write(ctx, item, result)
                if entry is not None:
                    result.written.append(entry)
                overall.advance(item.manifest.blob_size if item in todo else 0)
        return result

    def _verified(self, ctx: CaseContext, file_ids: list[str] | None, folder: str | None,
                  result: BulkResult) -> list[_Item]:
        latest = self.files.latest(ctx)
        if file_ids:
            missing = [fid for fid in file_ids if fid not in latest]
            if missing:
                raise VaultError(f"no file {missing[0]} in this case")
            chosen = sorted(set(file_ids))
        else:
            chosen = sorted(latest)
        within = folders.folder_arg(folder, "--folder") if folder is not None else ""
        items, seen = [], {}
        for fid in chosen:
            try:
                manifest, file_key, meta = self.files.verify(ctx, latest[fid])
            except crypto.IntegrityError:
                # Its path is unknown, so it may belong to any folder: always reported.
                result.failed.append({"file_id": fid, "path": None, "verification": True,
                                      "reason": f"file {fid} failed verification"})
                continue
            seen[fid] = (manifest.version, False)
            try:
                case_path = meta.case_path
            except PathError as exc:
                # An older record whose name no path may hold: it can only be fetched by id.
                result.failed.append({"file_id": fid, "path": meta.name, "verification": False,
                                      "reason": f"its name cannot be written here: {exc}"})
                continue
            if is_inside(within, case_path):
                items.append(_Item(fid, manifest, file_key, meta, case_path))
        self.files.record_seen(ctx, seen)
        return sorted(items, key=lambda i: (i.case_path, i.file_id))

    def _plan(self, root: Path, items: list[_Item], folder: str | None) -> None:
        """Every output path, checked before anything is written (module docstring)."""
        # `--folder Evidence/photos` writes DIR/photos/..., as `cp -r` of that folder would.
        parent = split_path(folders.folder_arg(folder, "--folder"))[0] if folder else ""
        rels = [i.case_path[len(parent) + 1:] if parent else i.case_path for i in items]
        clash = folders.find_clash(rels)
        if clash is not None:
            a, b = (items[i] for i in clash)
            raise VaultError(f"files {a.file_id} ({a.case_path!r}) and {b.file_id} "
                             f"({b.case_path!r}) would be one file on a case-insensitive disk "
                             "or a file in the way of a folder; nothing was written")
        problems = []
        for item, rel in zip(items, rels, strict=True):
            item.placement = folders.place(root, rel, size=item.meta.size,
                                           sha256=item.meta.sha256)
            problems += item.placement.problems
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise VaultError(f"{problems[0]}{more}; nothing was written")

    def _write(self, ctx: CaseContext, item: _Item, result: BulkResult) -> dict[str, Any] | None:
        placement = item.placement
        assert placement is not None
        entry = {"file_id": item.file_id, "version": item.manifest.version,
                 "name": item.meta.name, "path": str(placement.dest),
                 "case_path": item.case_path, "size": item.meta.size,
                 "sha256": item.meta.sha256,
                 "uploaded_by": ctx.username(item.manifest.uploader),
                 "written": not placement.present}
        if placement.present:
            return entry  # already there with exactly the verified bytes
        dest = folders.make_parents(placement)
        manifest, fid = item.manifest, item.file_id
        key = f"down-{ctx.case_id}-{fid}-{manifest.version}-{manifest.blob_sha256[:16]}"
        blob_path = self.session.keystore.transfer_path(key, "blob")
        try:
            log_index = self._download(ctx, manifest, blob_path, item.meta.name)
            with blob_path.open("rb") as src:
                crypto.decrypt_to_path(
                    src, dest, item.file_key, case_id=ctx.case_id, file_id=fid,
                    version=manifest.version, plaintext_size=item.meta.size,
                    expected_sha256=item.meta.sha256, blob_verified_by_caller=True)
        except (crypto.IntegrityError, ServerCopyDamaged):
            blob_path.unlink(missing_ok=True)
            result.failed.append({"file_id": fid, "path": item.case_path, "verification": True,
                                  "reason": f"file {fid} ({item.case_path}) failed "
                                            "verification; not written"})
            return None
        blob_path.unlink(missing_ok=True)
        self.cases.receipt(log_index, expect={"action": Action.FILE_DOWNLOADED,
                                              "case_id": ctx.case_id, "file_id": fid},
                           detail={"version": manifest.version})
        return entry

