"""`casevault custody CASE_ID FILE_ID`: a file's verified chain of custody (client.custody)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from client.cli import output as out
from client.cli.safetext import shown

VaultFactory = Callable[[argparse.Namespace], Any]
AddCommand = Callable[..., argparse.ArgumentParser]
KEYS = ("file_id", "path", "intake", "versions", "events")


def register(add: AddCommand, vault: VaultFactory) -> None:
    """Add `custody CASE_ID FILE_ID` to the parser through `add`."""

    def cmd_custody(args: argparse.Namespace) -> None:
        result = vault(args).custody(args.case_id, args.file_id)
        out.emit(args, {k: result[k] for k in KEYS}, custody_text(result))

    p = add("custody", cmd_custody,
            "show a file's verified chain of custody (intake, versions, audit events)")
    p.add_argument("case_id")
    p.add_argument("file_id")


def _who(name: Any, trust: str | None) -> str:
    if trust is None:
        return shown(name)
    return f"{shown(name)} ({'KEY CHANGED' if trust == 'changed' else trust})"


def custody_text(result: dict[str, Any]) -> str:
    """The human form of `custody`: every string a person or the server chose goes through
    `shown` (in the tables too), so no name or note can rewrite the terminal."""
    lines = [f"Chain of custody of {shown(result['path'])} ({result['file_id']}); "
             "verified against the pinned audit log checkpoint."]
    for v in result["versions"]:
        lines.append("")
        lines.append(f"Version {v['version']}: uploaded by "
                     f"{_who(v['uploaded_by'], v['uploaded_by_trust'])} at {v['uploaded_at']} "
                     f"(log entry {v['log_index']}, logged {v['logged_at']}), {v['size']} "
                     f"bytes, sha256 {v['sha256']}")
        intake = v["intake"]
        if intake is None:
            lines.append("  no intake record (uploaded by an older client)")
            continue
        lines.append(f"  taken in by {shown(intake['taken_in_by'])} at "
                     f"{intake['taken_in_at']} (their clock) with "
                     f"{shown(intake['client_version'])}")
        lines.append(f"  original name {shown(intake['original_name'])}, modified "
                     f"{intake['original_mtime'] or 'unknown'}, sha256 {intake['sha256']}")
        if intake["source"]:
            lines.append(f"  source: {shown(intake['source'])}")
        if intake["note"]:
            lines.append(f"  note: {shown(intake['note'])}")
    rows = [{**e, "actor": _who(e["actor"], e.get("actor_trust")) if e["actor"] else "?",
             "version": "" if e["version"] is None else e["version"]}
            for e in result["events"]]
    lines += ["", "Audit events:",
              out.table(rows, ["index", "time", "actor", "action", "version"])]
    return "\n".join(lines)
