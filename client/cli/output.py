"""Output of the `casevault` command: JSON or text on stdout, errors and progress on stderr.

Every string from the server or another person passes `shown` (client.cli.safetext) on its way
to the terminal: table cells and error lines here, values in messages where commands build them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import segno
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from client.cli.safetext import shown, shown_markup

# Progress bars only for transfers large enough for a lawyer to wonder whether anything happens.
PROGRESS_MIN_BYTES = 4 * 1024 * 1024

ProgressFactory = Callable[[str, int], Any]


def json_line(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def text(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit(args: argparse.Namespace, obj: Any, human: str) -> None:
    if args.json:
        json_line(obj)
    elif human:
        text(human)


def fail(message: str, code: int) -> int:
    # One line, whatever the message holds; a server's text in it is escaped, not obeyed.
    message = shown(" ".join(str(message).split()))
    sys.stderr.write(f"casevault: error: {message}\n")
    sys.stderr.flush()
    return code


def warn(message: str) -> None:
    """A line on stderr that a script reading stdout (or --json) still gets to see."""
    sys.stderr.write(f"casevault: warning: {message}\n")
    sys.stderr.flush()


def skipped(path: Any, reason: str) -> None:
    """A notice on stderr that does not end the command (a skipped or refused file)."""
    warn(f"skipped {shown(str(path))}: {reason}")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    # Cells hold names chosen by others: escaped, so a name cannot rewrite another row.
    cells = [[shown(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def show_enrolment(username: str, totp_uri: str, recovery_code: str,
                   totp_recovery_codes: Sequence[str] = ()) -> None:
    # The URI and the codes come from the server.
    username, totp_uri, recovery_code = shown(username), shown(totp_uri), shown(recovery_code)
    totp_recovery_codes = [shown(c) for c in totp_recovery_codes]
    text(f"Account {username} created. Add it to your authenticator app:")
    text("")
    qr = segno.make(totp_uri, error="m")
    qr.terminal(out=sys.stdout, compact=True, border=2)
    text("")
    text(f"Or enter this URI: {totp_uri}")
    text("")
    text("RECOVERY CODE (shown only this once; write it down and keep it offline):")
    text(f"    {recovery_code}")
    text("It is the only way back in if you forget your passphrase. Nobody, not even the")
    text("server's operator, can recover your account or your files without it.")
    text("")
    if totp_recovery_codes:
        text("TOTP RECOVERY CODES (shown only this once; keep them offline, apart from the phone):")
        for code in totp_recovery_codes:
            text(f"    {code}")
        text("If you lose the phone with the authenticator app, log in with one of these in")
        text("place of the 6-digit code. Each works once. They do not replace the passphrase.")
        text("")


def show_new_recovery_code(recovery_code: str) -> None:
    text("")
    text("NEW RECOVERY CODE (shown only this once; write it down and keep it offline):")
    text(f"    {recovery_code}")
    text("The code you just used no longer works: destroy it. This one replaces it.")


class _Bar:
    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)


class _NoBar:
    def advance(self, n: int) -> None:
        pass


def progress_factory(*, enabled: bool) -> Callable[[str, int], Any]:
    """A context-manager factory `bar(label, total)` drawing on stderr when it is a terminal.

    Bars opened inside another (each file inside the total of a folder) join the outer one's
    display: Rich allows one live display at a time."""
    console = Console(stderr=True)
    live: list[Progress] = []

    @contextmanager
    def bar(label: str, total: int) -> Iterator[Any]:
        if not enabled or total < PROGRESS_MIN_BYTES or not console.is_terminal:
            yield _NoBar()
            return
        if live:
            task = live[0].add_task(label, total=total)
            try:
                yield _Bar(live[0], task)
            finally:
                live[0].remove_task(task)
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            live.append(progress)
            try:
                # The label names a file someone else chose, and Rich reads markup in it.
                yield _Bar(progress, progress.add_task(shown_markup(label), total=total))
            finally:
                live.clear()

    return bar
