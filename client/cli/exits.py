"""Exit codes of `casevault`, decided in one table by the class of the error.

0 success, 1 error, 2 usage, 3 something failed verification (a file, a key, a log),
4 a colleague's key changed and needs `casevault trust`, 130 interrupted.

The table is looked up through the error's class hierarchy (its MRO), nearest class first, so a
new subclass of ClientError gets its parent's code without touching this file.
"""

from __future__ import annotations

from client.errors import (
    ClientError,
    IntegrityError,
    InvalidRecoveryCode,
    KeyChanged,
    ServerCopyDamaged,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_KEY_CHANGED = 4
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake on the command line or at a prompt."""


EXIT_CODES: dict[type[BaseException], int] = {
    ClientError: EXIT_ERROR,
    KeyChanged: EXIT_KEY_CHANGED,
    ServerCopyDamaged: EXIT_INTEGRITY,
    # client.crypto's one verification error sits outside ClientError (client.crypto depends
    # on nothing else of the client); it is named here beside it.
    IntegrityError: EXIT_INTEGRITY,
    InvalidRecoveryCode: EXIT_ERROR,
    # A usage mistake found after parsing (a prompt, a missing argument) is reported like any
    # other error, as before; argparse's own refusals exit 2 before a command runs.
    UsageError: EXIT_ERROR,
    OSError: EXIT_ERROR,
    KeyboardInterrupt: EXIT_INTERRUPTED,
}


def exit_code(exc: BaseException) -> int | None:
    """The exit code of the nearest class of `exc` in the table; None for anything else."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return None


def message(exc: BaseException) -> str:
    """The one line shown for `exc`: verification failures are named as such."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, IntegrityError):
        return f"IntegrityError: {exc}"
    if isinstance(exc, OSError) and not isinstance(exc, ClientError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)
