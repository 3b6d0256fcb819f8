"""Folder paths on this machine's side of a transfer (SPEC 6.5.1).

`put`: a directory is walked as `cp -r` would copy it, each regular file getting the case path
FOLDER/<directory name>/<relative path>; every path is checked by the protocol's rules, and two
that would name one file on a case-insensitive disk are refused, all before anything is sent.

`get` of many files: each file's local path comes from its verified case path, and is checked
to stay inside the output directory without following a symbolic link found there; nothing is
overwritten (a file already holding the same bytes is left as it is).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from client import crypto
from client.errors import VaultError
from vault.protocol.paths import (
    SEPARATOR,
    PathError,
    collision_key,
    join_folder,
    normalize_case_path,
    normalize_folder,
    split_path,
)

_HASH_READ = 1024 * 1024

# `on_skip(local_path, reason)`: told of each entry of a walked directory that is not uploaded.
SkipNotice = Callable[[Path, str], None]


def folder_arg(text: str | None, flag: str) -> str:
    """A folder named on the command line, canonical; '' (or None) is the case root. One
    trailing '/' is how shells complete a folder's name, so it is accepted."""
    try:
        given = text or ""
        return normalize_folder(given[:-1] if given.endswith(SEPARATOR) and given != SEPARATOR
                                else given)
    except PathError as exc:
        raise VaultError(f"{flag} {text!r}: {exc}") from None


def entry_path(meta: crypto.FileMetadata) -> str:
    """The path shown for a file: its own, else its name at the root (an older record)."""
    return meta.path if meta.path is not None else meta.name


def in_folder(entries: Iterable[dict], folder: str) -> list[dict]:
    """Listing entries inside `folder` (whole segments), sorted by path."""
    prefix = folder + SEPARATOR
    chosen = [e for e in entries if folder == "" or str(e["path"]).startswith(prefix)]
    return sorted(chosen, key=lambda e: (e["path"], e["file_id"]))


def keep_folder(meta: crypto.FileMetadata, name: str) -> str:
    """The path of a new version named `name`: it stays in the folder of the version before."""
    folder = split_path(meta.path)[0] if meta.path is not None else ""
    try:
        return join_folder(folder, name)
    except PathError as exc:
        raise VaultError(f"cannot upload {name!r}: {exc}") from None


# ---------------------------------------------------------------- put: walking a local tree


@dataclass(frozen=True)
class PlannedUpload:
    local: Path
    case_path: str


def _walk(top: Path, rel: str, on_skip: SkipNotice) -> Iterator[tuple[Path, str]]:
    """Regular files under `top`, sorted by name at each level. Symbolic links are never
    followed (a link inside a case folder may point anywhere on this machine), and devices,
    sockets and pipes have no content to take in: both are skipped with a notice."""
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        local, sub = Path(entry.path), f"{rel}{SEPARATOR}{entry.name}"
        if entry.is_symlink():
            on_skip(local, "symbolic link, not followed")
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(local, sub, on_skip)
        elif entry.is_file(follow_symlinks=False):
            yield local, sub
        else:
            on_skip(local, "not a regular file (device, socket or pipe)")


def _top_name(path: Path) -> str:
    # `put CASE .` or `put CASE ../x`: the directory's own name, as cp -r would use.
    return path.name if path.name not in ("", ".", "..") else path.resolve().name


def plan_upload(paths: list[Path], *, to: str | None,
                on_skip: SkipNotice | None = None) -> list[PlannedUpload]:
    """Every file to upload with its case path; VaultError naming the first path the rules
    refuse, or the first pair that collides, before anything is read or sent."""
    folder = folder_arg(to, "--to")
    notice = on_skip or (lambda _p, _r: None)
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found.extend(_walk(path, _top_name(path), notice))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise VaultError(f"{path} is not a readable file or directory")
    planned = []
    for local, rel in found:
        try:
            case_path = normalize_case_path(f"{folder}{SEPARATOR}{rel}" if folder else rel)
        except PathError as exc:
            raise VaultError(f"cannot upload {local}: {exc}; nothing was uploaded") from None
        planned.append(PlannedUpload(local, case_path))
    clash = find_clash([p.case_path for p in planned])
    if clash is not None:
        a, b = (planned[i] for i in clash)
        raise VaultError(f"{a.local} and {b.local} would both be {b.case_path!r} in the case "
                         "(names that differ only in letter case are one file on Windows and "
                         "macOS); nothing was uploaded")
    return planned


def find_clash(case_paths: list[str]) -> tuple[int, int] | None:
    """Indexes of the first two paths that name one file on a case-insensitive disk, or of a
    file whose path is another file's folder; None if they can all be written side by side."""
    files: dict[str, int] = {}
    folders: dict[str, int] = {}
    for i, path in enumerate(case_paths):
        key = collision_key(path)
        if key in files:
            return files[key], i
        if key in folders:
            return folders[key], i
        files[key] = i
        parts = key.split(SEPARATOR)
        for depth in range(1, len(parts)):
            prefix = SEPARATOR.join(parts[:depth])
            if prefix in files:
                return files[prefix], i
            folders.setdefault(prefix, i)
    return None


# ---------------------------------------------------------------- get: writing a tree


@dataclass
class Placement:
    """Where one verified file goes under the output directory, and whether it is there."""

    root: Path
    rel: str
    present: bool = False  # a regular file with exactly the verified bytes is already there
    problems: list[str] = field(default_factory=list)

    @property
    def dest(self) -> Path:
        return self.root.joinpath(*self.rel.split(SEPARATOR))


def _same_bytes(path: Path, size: int, sha256: str) -> bool:
    if path.stat().st_size != size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_READ):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def place(root: Path, rel: str, *, size: int, sha256: str) -> Placement:
    """Check, without writing, where `rel` (a canonical relative path) lands under `root`."""
    found = Placement(root, normalize_case_path(rel))
    current = root
    segments = found.rel.split(SEPARATOR)
    for i, segment in enumerate(segments):
        current = current / segment
        last = i == len(segments) - 1
        try:
            st = current.lstat()
        except FileNotFoundError:
            return found
        if os.path.islink(current):
            found.problems.append(f"{current} is a symbolic link; it is not followed")
        elif last and not current.is_file():
            found.problems.append(f"{current} exists and is not a regular file")
        elif last and not _same_bytes(current, size, sha256):
            found.problems.append(f"{current} exists with other content; it is not overwritten")
        elif last:
            found.present = True
        elif not stat.S_ISDIR(st.st_mode):
            found.problems.append(f"{current} exists and is not a folder")
        if found.problems:
            return found
    return found


def make_parents(placement: Placement) -> Path:
    """Create the folders of `placement` one by one under its root, refusing any that is (or
    becomes) a symbolic link, and prove the result lies inside the root before it is used."""
    root = placement.root.resolve()
    current = placement.root
    for segment in placement.rel.split(SEPARATOR)[:-1]:
        current = current / segment
        with contextlib.suppress(FileExistsError):
            os.mkdir(current, 0o700)  # case files are confidential, like the files (0600)
        if os.path.islink(current) or not current.is_dir():
            raise VaultError(f"{current} is not a plain folder; nothing is written through it")
    dest = placement.dest
    # The last line of defence: whatever the path rules let through, never leave the root.
    if not dest.parent.resolve().is_relative_to(root) or os.path.islink(dest):
        raise VaultError(f"{dest} would lie outside {placement.root}; not written")
    return dest
