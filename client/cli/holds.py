"""`casevault hold` and the hold line that `ls`, `members` and `case list` show.

Every hold shown here comes from the client's own replay of the signed membership log
(client.holds), never from what the server's listing claims.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from client.cli import output as out
from client.cli.exits import UsageError
from client.holds import describe

VaultFactory = Callable[[argparse.Namespace], Any]
AddCommand = Callable[..., argparse.ArgumentParser]


def register(add: AddCommand, vault: VaultFactory) -> None:
    """Add `hold CASE_ID (--reason TEXT | --release)` to the parser through `add`."""

    def cmd_hold(args: argparse.Namespace) -> None:
        v = vault(args)
        if args.release:
            result = v.release_hold(args.case_id)
            out.emit(args, result, f"Released the legal hold on {args.case_id} "
                                   f"({result['reason']}). Deletions are possible again.")
            return
        if args.reason is None:
            raise UsageError("give --reason TEXT to place a hold, or --release")
        result = v.hold(args.case_id, args.reason)
        out.emit(args, result, f"Legal hold placed on {args.case_id}: {result['reason']}. "
                               "Nothing in the case can be deleted until it is released.")

    p = add("hold", cmd_hold, "place or release a legal hold on a case (owners)")
    p.add_argument("case_id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--reason", metavar="TEXT", help="why the case is held (signed, shown)")
    how.add_argument("--release", action="store_true", help="release the standing hold")


def notice(args: argparse.Namespace, vault: Any, case_id: str, *, stderr: bool) -> None:
    """In human mode, one line naming the hold standing on the case, if any."""
    if args.json:
        return
    hold = vault.hold_status(case_id)
    if hold is None:
        return
    if stderr:
        sys.stderr.write(describe(hold) + "\n")
        sys.stderr.flush()
    else:
        out.text(describe(hold))


def case_columns(cases: Sequence[dict[str, Any]]) -> list[str]:
    """The `case list` table's columns; a HOLD column only when a case is held."""
    columns = ["case_id", "role", "name"]
    if any(c.get("hold") for c in cases):
        columns.insert(2, "hold")
    return columns
