"""`casevault`: the lawyer's command line. Argument parsing and presentation only; the work is
in the operations behind client.vault; exit codes come from client.cli.exits. The contract
(commands, flags, environment, --json keys) is DESIGN.md section 6.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from client.cli import output as out
from client.cli.exits import EXIT_INTEGRITY, EXIT_OK, UsageError, exit_code, message
from client.crypto import IntegrityError
from client.errors import VaultError
from client.vault import Vault

__all__ = ["EXIT_INTEGRITY", "EXIT_OK", "Vault", "main"]

PASSPHRASE_ENV = "CASEVAULT_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
TOTP_ENV = "CASEVAULT_TOTP"
SERVER_ENV = "CASEVAULT_SERVER"


# ---------------------------------------------------------------- prompts


def _passphrase(*, confirm: bool = False, prompt: str = "Passphrase: ") -> str:
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise UsageError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise UsageError("the two passphrases differ")
    if not first:
        raise UsageError("the passphrase is empty")
    return first


# A one-time TOTP recovery code as the server prints them: 16 base32 characters in groups of 4.
_TOTP_RECOVERY_CODE = re.compile(r"^[A-Z2-7]{4}(-?[A-Z2-7]{4}){3}$")


def _totp(flag: str | None, *, prompt: str = "6-digit code from the authenticator app: ",
          allow_recovery_code: bool = False) -> str:
    code = flag or os.environ.get(TOTP_ENV)
    if not code:
        if sys.stdin.isatty():
            sys.stderr.write(prompt)
            sys.stderr.flush()
        code = sys.stdin.readline()
    code = code.strip().replace(" ", "")
    if allow_recovery_code and _TOTP_RECOVERY_CODE.match(code.upper()):
        return code.upper()
    if len(code) != 6 or not code.isdigit():
        raise UsageError("the code is 6 digits" + (
            " (or one of your one-time TOTP recovery codes)" if allow_recovery_code else ""))
    return code


def _line(prompt: str) -> str:
    if sys.stdin.isatty():
        sys.stderr.write(prompt)
        sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError("no input")
    return line.strip()


# ---------------------------------------------------------------- commands


def _vault(args: argparse.Namespace, *, server: str | None = None) -> Vault:
    return Vault(
        server=server or os.environ.get(SERVER_ENV),
        passphrase=_passphrase,
        progress=out.progress_factory(enabled=not args.json),
    )


def cmd_register(args: argparse.Namespace) -> None:
    vault = _vault(args, server=args.server)
    passphrase = _passphrase(confirm=True, prompt="Choose a passphrase: ")
    enrolment = vault.register(args.username, passphrase, invite=args.invite)
    if args.json:
        # The contract's three keys, plus the server's one-time TOTP recovery codes.
        out.json_line({"username": enrolment.username, "totp_uri": enrolment.totp_uri,
                       "recovery_code": enrolment.recovery_code,
                       "totp_recovery_codes": enrolment.totp_recovery_codes})
    else:
        out.show_enrolment(enrolment.username, enrolment.totp_uri, enrolment.recovery_code,
                           enrolment.totp_recovery_codes)
    code = _totp(args.totp, prompt="Enter the 6-digit code the app shows now: ")
    who = vault.activate(enrolment, code)
    if not args.json:
        out.text(f"Account {who['username']} is active and logged in.")
        out.text(f"Your safety number: {who['safety_number']}")


def cmd_login(args: argparse.Namespace) -> None:
    vault = _vault(args, server=args.server)
    who = vault.login(args.username, _passphrase(), _totp(
        args.totp, prompt="6-digit code (or a one-time TOTP recovery code): ",
        allow_recovery_code=True))
    out.emit(args, who, f"Logged in as {who['username']} at {who['server']}.")


def cmd_logout(args: argparse.Namespace) -> None:
    _vault(args).logout()
    out.emit(args, {"logged_out": True}, "Logged out.")


def cmd_whoami(args: argparse.Namespace) -> None:
    who = _vault(args).whoami()
    out.emit(args, who, f"{who['username']} at {who['server']}")


def cmd_recover(args: argparse.Namespace) -> None:
    vault = _vault(args, server=args.server)
    code = args.recovery_code or _line("Recovery code: ")
    new_passphrase = _passphrase(confirm=True, prompt="Choose a new passphrase: ")
    who = vault.recover(args.username, code, new_passphrase, _totp(args.totp))
    # Recovery ends every session, this one included: the next step is a normal login.
    out.emit(args, {**who, "sessions_ended": True},
             f"Passphrase reset for {who['username']}. Every session was ended; log in with "
             f"the new passphrase and the next code: casevault login {who['username']}")
    if not args.json:
        out.show_new_recovery_code(who["recovery_code"])


def cmd_case_create(args: argparse.Namespace) -> None:
    case_id = _vault(args).create_case(args.name)
    out.emit(args, {"case_id": case_id}, case_id)


def cmd_case_list(args: argparse.Namespace) -> None:
    cases = _vault(args).list_cases()
    out.emit(args, cases, out.table(cases, ["case_id", "role", "name"]))


def cmd_put(args: argparse.Namespace) -> None:
    results = _vault(args).put(args.case_id, [Path(p) for p in args.paths],
                               file_id=args.file_id, to=args.to, on_skip=out.skipped)
    out.emit(args, results, out.table(results, ["file_id", "version", "size", "path", "sha256"]))


def cmd_ls(args: argparse.Namespace) -> None:
    files = _vault(args).ls(args.case_id, args.folder)
    out.emit(args, files, out.table(
        files, ["file_id", "version", "size", "uploaded_by", "uploaded_at", "path"]))


def cmd_get(args: argparse.Namespace) -> None:
    if args.all or args.folder is not None or len(args.file_id) > 1:
        cmd_get_many(args)
        return
    if len(args.file_id) != 1:
        raise UsageError("name a FILE_ID, or pass --all or --folder FOLDER with -o DIR")
    args.file_id = args.file_id[0]
    result = _vault(args).get(args.case_id, args.file_id,
                              output=Path(args.output) if args.output else None,
                              version=args.version)
    out.emit(args, result, f"{result['path']}  sha256 {result['sha256']}  (verified)")


def cmd_get_many(args: argparse.Namespace) -> None:
    if args.version is not None:
        raise UsageError("--version takes one FILE_ID")
    if bool(args.file_id) + args.all + (args.folder is not None) != 1:
        raise UsageError("pass FILE_IDs, --all or --folder FOLDER: one of them")
    if args.output is None and (args.all or args.folder is not None):
        raise UsageError("--all and --folder need -o DIR")
    result = _vault(args).get_many(
        args.case_id, output=Path(args.output) if args.output else Path.cwd(),
        file_ids=args.file_id or None, folder=args.folder)
    out.emit(args, result.written, out.table(result.written, ["file_id", "size", "path"]))
    if result.failed:
        for failure in result.failed:
            out.warn(failure["reason"])
        if result.integrity_failed:
            bad = ", ".join(f["file_id"] for f in result.failed if f["verification"])
            raise IntegrityError(f"file(s) {bad}")  # "... failed verification": exit 3
        ids = ", ".join(f["file_id"] for f in result.failed)
        raise VaultError(f"{len(result.failed)} file(s) not written ({ids})")


def cmd_rm(args: argparse.Namespace) -> None:
    _vault(args).rm(args.case_id, args.file_id)
    out.emit(args, {"file_id": args.file_id, "deleted": True}, f"Deleted {args.file_id}.")


def cmd_share(args: argparse.Namespace) -> None:
    result = _vault(args).share(args.case_id, args.username, role=args.role,
                                fingerprint=args.fingerprint)
    lines = [f"Shared with {result['username']} as {result['role']}."]
    if result.get("first_seen"):
        lines.append(f"First time this key of {result['username']} was seen; pinned it.")
    lines.append(f"Safety number of {result['username']}: {result['safety_number']}")
    if not result.get("verified"):
        lines.append("Compare it with them over a trusted channel, then run "
                     f"`casevault trust {result['username']} NUMBER`.")
    out.emit(args, result, "\n".join(lines))


def cmd_revoke(args: argparse.Namespace) -> None:
    result = _vault(args).revoke(args.case_id, args.username)
    out.emit(args, result, f"Removed {result['username']}; new files use key generation "
             f"{result['generation']}. They keep what they could already read.")


def cmd_role(args: argparse.Namespace) -> None:
    result = _vault(args).set_role(args.case_id, args.username, args.role)
    out.emit(args, result, f"{result['username']} is now {result['role']} of the case.")


def cmd_members(args: argparse.Namespace) -> None:
    members = _vault(args).members(args.case_id)
    out.emit(args, members, out.table(members, ["username", "role"]))


def cmd_audit(args: argparse.Namespace) -> None:
    vault = _vault(args)
    if args.verify:
        # The whole chain: the pin advanced by a consistency proof, every receipt re-proven.
        summary = vault.verify_log()
        if args.case_id is None:
            moved = (f" (advanced from {summary['previous_size']} through a consistency proof)"
                     if summary["previous_size"] not in (None, summary["log_size"]) else "")
            out.emit(args, summary,
                     f"Audit log verified: {summary['log_size']} entries{moved}; "
                     f"{summary['receipts']} receipt(s) of your own actions re-proven.")
            return
    elif args.case_id is None:
        raise UsageError("name a case (casevault audit CASE_ID) or pass --verify")
    events = vault.audit(args.case_id)
    out.emit(args, events, out.table(events, ["index", "time", "actor", "action", "target"]))


def cmd_fingerprint(args: argparse.Namespace) -> None:
    result = _vault(args).fingerprint(args.username)
    state = "verified" if result["verified"] else "not verified"
    out.emit(args, result,
             f"{result['username']}: {result['safety_number']} ({state})")


def cmd_trust(args: argparse.Namespace) -> None:
    result = _vault(args).trust(args.username, args.safety_number)
    out.emit(args, result, f"Trusted the key of {result['username']}.")


# ---------------------------------------------------------------- parser


def _build_parser() -> argparse.ArgumentParser:
    # --json is accepted before and after the command: the sub-parsers repeat it with
    # SUPPRESS as default so an absent flag there does not reset one given earlier.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output on stdout")

    parser = argparse.ArgumentParser(
        prog="casevault", description="End-to-end encrypted case files for defence lawyers.")
    parser.add_argument("--json", action="store_true", default=False,
                        help="machine-readable output on stdout")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str,
            target: Any = sub) -> argparse.ArgumentParser:
        p = target.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("register", cmd_register, "create an account (passphrase + TOTP)")
    p.add_argument("username")
    p.add_argument("--server")
    p.add_argument("--invite", metavar="CODE")
    p.add_argument("--totp", metavar="CODE", help=argparse.SUPPRESS)

    p = add("login", cmd_login, "log in")
    p.add_argument("username")
    p.add_argument("--server")
    p.add_argument("--totp", metavar="CODE",
                   help="the 6-digit code, or one of the one-time TOTP recovery codes")

    add("logout", cmd_logout, "end the session")
    add("whoami", cmd_whoami, "show who is logged in")

    p = add("recover", cmd_recover, "reset the passphrase with the recovery code (needs TOTP)")
    p.add_argument("username")
    p.add_argument("--server")
    p.add_argument("--totp", metavar="CODE")
    p.add_argument("--recovery-code", metavar="CODE",
                   help="the recovery code (else read from stdin)")

    case = sub.add_parser("case", parents=[common], help="create or list cases")
    case_sub = case.add_subparsers(dest="case_command", metavar="SUBCOMMAND", required=True)
    p = add("create", cmd_case_create, "create a case", case_sub)
    p.add_argument("name")
    add("list", cmd_case_list, "list your cases", case_sub)

    p = add("put", cmd_put, "encrypt and upload files and folders (recursively, like cp -r)")
    p.add_argument("case_id")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--to", metavar="FOLDER", help="the folder of the case to upload into")
    p.add_argument("--file-id", metavar="FILE_ID",
                   help="upload the one PATH as the next version of this existing file")

    p = add("ls", cmd_ls, "list the files of a case, or of one of its folders")
    p.add_argument("case_id")
    p.add_argument("folder", nargs="?", metavar="FOLDER")

    p = add("get", cmd_get, "download, verify and decrypt files (folders kept)")
    p.add_argument("case_id")
    p.add_argument("file_id", nargs="*", metavar="FILE_ID")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="a file, or with several files a directory (created if missing)")
    p.add_argument("--all", action="store_true", help="the latest version of every file")
    p.add_argument("--folder", metavar="FOLDER", help="every file inside one folder")
    p.add_argument("--version", type=int, metavar="N")

    p = add("rm", cmd_rm, "delete a file")
    p.add_argument("case_id")
    p.add_argument("file_id")

    p = add("share", cmd_share, "give a colleague access to a case")
    p.add_argument("case_id")
    p.add_argument("username")
    p.add_argument("--role", choices=["viewer", "editor", "owner"], default="editor")
    p.add_argument("--fingerprint", metavar="SAFETY_NUMBER")

    p = add("revoke", cmd_revoke, "remove a colleague from a case (rotates the case key)")
    p.add_argument("case_id")
    p.add_argument("username")

    p = add("role", cmd_role, "change a member's role in a case")
    p.add_argument("case_id")
    p.add_argument("username")
    p.add_argument("role", choices=["viewer", "editor", "owner"])

    p = add("members", cmd_members, "list the members of a case")
    p.add_argument("case_id")

    p = add("audit", cmd_audit, "show the verified audit trail of a case")
    p.add_argument("case_id", nargs="?")
    p.add_argument("--verify", action="store_true",
                   help="re-verify the log and every receipt of your own actions")

    p = add("fingerprint", cmd_fingerprint, "show a safety number (yours by default)")
    p.add_argument("username", nargs="?")

    p = add("trust", cmd_trust, "mark a colleague's key as verified out of band")
    p.add_argument("username")
    p.add_argument("safety_number", nargs="+", metavar="SAFETY_NUMBER")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if isinstance(getattr(args, "safety_number", None), list):
        args.safety_number = " ".join(args.safety_number)
    try:
        args.func(args)
    except BaseException as exc:
        code = exit_code(exc)
        if code is None:
            raise  # a bug, or SystemExit: not ours to turn into one line
        return out.fail(message(exc), code)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
