"""`casevault export` and `casevault verify-bundle` (DESIGN.md sections 6 and 8).

`verify-bundle` needs no server, no account and no client state: it reads the bundle alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.cli import output as out
from client.cli.exits import UsageError
from client.cli.safetext import shown
from client.legal.export import Exports
from client.legal.verify import verify_bundle

VaultFactory = Callable[[argparse.Namespace], Any]
AddCommand = Callable[..., argparse.ArgumentParser]


def register(add: AddCommand, vault: VaultFactory) -> None:
    """Add `export` and `verify-bundle` to the parser through `add`."""

    def cmd_export(args: argparse.Namespace) -> None:
        if bool(args.file_id) + args.all + (args.folder is not None) != 1:
            raise UsageError("pass FILE_IDs, --all or --folder FOLDER: one of them")
        result = Exports(vault(args).session).export(
            args.case_id, output=Path(args.output), file_ids=args.file_id or None,
            folder=args.folder)
        lines = [f"  data/{shown(f['path'])}  sha256 {f['sha256']}" for f in result["files"]]
        out.emit(args, result, f"Court bundle written to {shown(result['path'])} "
                               f"({len(result['files'])} file(s), verified):\n"
                 + "\n".join(lines))

    p = add("export", cmd_export, "export files as a court bundle (BagIt) anyone can verify")
    p.add_argument("case_id")
    p.add_argument("file_id", nargs="*", metavar="FILE_ID")
    p.add_argument("--all", action="store_true", help="the latest version of every file")
    p.add_argument("--folder", metavar="FOLDER", help="every file inside one folder")
    p.add_argument("-o", "--output", metavar="DIR", required=True,
                   help="the bundle's directory (must not exist yet)")

    def cmd_verify_bundle(args: argparse.Namespace) -> None:
        result = verify_bundle(Path(args.dir))
        lines = [f"  data/{shown(f['path'])}  sha256 {f['sha256']}  signed by "
                 f"{shown(f['uploaded_by'])} ({f['uploaded_by_safety_number']})"
                 for f in result["files"]]
        out.emit(args, result, f"verified: {len(result['files'])} file(s) of case "
                               f"{result['case_id']}, proven in the log checkpoint of size "
                               f"{result['checkpoint']['size']} signed by "
                               f"{result['log_key']}\n" + "\n".join(lines))

    p = add("verify-bundle", cmd_verify_bundle, "verify a court bundle offline")
    p.add_argument("dir", metavar="DIR")
