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

from client.cli import custody as custody_cli
from client.cli import holds as hold_cli
from client.cli import legal as legal_cli
from client.cli import output as out
from client.cli.exits import EXIT_INTEGRITY, EXIT_OK, UsageError, exit_code, message
from client.cli.safetext import shown
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


def _confirmer(args: argparse.Namespace) -> Callable[[list[dict[str, Any]], str], bool | None]:
    """The one-time question before an upload or a share reaches people not verified.

    On a terminal (human output) the lawyer is asked, with the safety numbers on screen; the
    answer is remembered per person and key. --yes answers yes (and is remembered the same
    way). Anywhere else (--json, no terminal) nobody can answer: a script must neither hang
    nor fail where it used to work, so the command goes on, but never silently: one warning
    line on stderr every time until the person is verified or confirmed, and the state in
    the --json result ("trust", "unverified_members").
    """

    def confirm(people: list[dict[str, Any]], action: str) -> bool | None:
        if getattr(args, "yes", False):
            return True
        who = "; ".join(f"{shown(p['username'])} ({p['trust']}, safety number "
                        f"{p['safety_number']})" for p in people)
        if args.json or not (sys.stdin.isatty() and sys.stderr.isatty()):
            out.warn(f"{shown(action)}: not verified: {who}. Compare the safety numbers, then "
                     "run `casevault trust USERNAME NUMBER` (or confirm with --yes)")
            return None
        sys.stderr.write(f"{shown(action)}: these people's keys were never verified:\n")
        for p in people:
            state = "KEY CHANGED" if p["trust"] == "changed" else p["trust"]
            sys.stderr.write(f"  {shown(p['username'])} ({state})\n"
                             f"    safety number {p['safety_number']}\n")
        sys.stderr.write("Whoever holds these keys can read what you share. Compare the numbers "
                         "with them over a trusted channel.\nContinue? [y/N] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm


def _who(name: Any, trust: str | None) -> str:
    """A person as a human table shows them: the name with its trust state."""
    if trust is None:
        return str(name)
    return f"{shown(name)} ({'KEY CHANGED' if trust == 'changed' else trust})"


# ---------------------------------------------------------------- commands


def _vault(args: argparse.Namespace, *, server: str | None = None) -> Vault:
    return Vault(
        server=server or os.environ.get(SERVER_ENV),
        passphrase=_passphrase,
        progress=out.progress_factory(enabled=not args.json),
        confirm=_confirmer(args),
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
        out.text(f"Account {shown(who['username'])} is active and logged in.")
        out.text(f"Your safety number: {shown(who['safety_number'])}")


def cmd_login(args: argparse.Namespace) -> None:
    vault = _vault(args, server=args.server)
    who = vault.login(args.username, _passphrase(), _totp(
        args.totp, prompt="6-digit code (or a one-time TOTP recovery code): ",
        allow_recovery_code=True))
    out.emit(args, who, f"Logged in as {shown(who['username'])} at {shown(who['server'])}.")


def cmd_logout(args: argparse.Namespace) -> None:
    _vault(args).logout()
    out.emit(args, {"logged_out": True}, "Logged out.")


def cmd_whoami(args: argparse.Namespace) -> None:
    who = _vault(args).whoami()
    out.emit(args, who, f"{shown(who['username'])} at {shown(who['server'])}")


def cmd_recover(args: argparse.Namespace) -> None:
    vault = _vault(args, server=args.server)
    code = args.recovery_code or _line("Recovery code: ")
    new_passphrase = _passphrase(confirm=True, prompt="Choose a new passphrase: ")
    who = vault.recover(args.username, code, new_passphrase, _totp(args.totp))
    # Recovery ends every session, this one included: the next step is a normal login.
    out.emit(args, {**who, "sessions_ended": True},
             f"Passphrase reset for {shown(who['username'])}. Every session was ended; log in "
             f"with the new passphrase and the next code: casevault login "
             f"{shown(who['username'])}")
    if not args.json:
        out.show_new_recovery_code(who["recovery_code"])


def cmd_case_create(args: argparse.Namespace) -> None:
    case_id = _vault(args).create_case(args.name)
    out.emit(args, {"case_id": case_id}, case_id)


def cmd_case_list(args: argparse.Namespace) -> None:
    cases = _vault(args).list_cases()
    out.emit(args, cases, out.table(cases, hold_cli.case_columns(cases)))


def cmd_put(args: argparse.Namespace) -> None:
    results = _vault(args).put(args.case_id, [Path(p) for p in args.paths],
                               file_id=args.file_id, to=args.to, on_skip=out.skipped,
                               source=args.source, note=args.note)
    out.emit(args, results, out.table(results, ["file_id", "version", "size", "path", "sha256"]))
    if not args.json and results and results[0].get("unverified_members"):
        out.text("Members not verified: " + ", ".join(
            _who(p["username"], p["trust"]) for p in results[0]["unverified_members"]))


def cmd_ls(args: argparse.Namespace) -> None:
    vault = _vault(args)
    files = vault.ls(args.case_id, args.folder)
    hold_cli.notice(args, vault, args.case_id, stderr=True)
    rows = [{**f, "uploaded_by": _who(f["uploaded_by"], f.get("uploaded_by_trust"))}
            for f in files]
    out.emit(args, files, out.table(
        rows, ["file_id", "version", "size", "uploaded_by", "uploaded_at", "path"]))


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
    where = Path(result["path"]).absolute()
    out.emit(args, result, f"Saved {shown(result['name'])} to {shown(where)}  "
             f"sha256 {result['sha256']}  (verified; uploaded by "
             f"{_who(result['uploaded_by'], result.get('uploaded_by_trust'))})")


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
    name = shown(result["username"])
    lines = [f"Shared with {_who(name, result.get('trust'))} as {result['role']}."]
    if result.get("first_seen"):
        lines.append(f"First time this key of {name} was seen; pinned it.")
    lines.append(f"Safety number of {name}: {result['safety_number']}")
    if not result.get("verified"):
        lines.append("Compare it with them over a trusted channel, then run "
                     f"`casevault trust {name} NUMBER`.")
    out.emit(args, result, "\n".join(lines))


def cmd_revoke(args: argparse.Namespace) -> None:
    result = _vault(args).revoke(args.case_id, args.username)
    out.emit(args, result, f"Removed {shown(result['username'])}; new files use key generation "
             f"{result['generation']}. They keep what they could already read.")


def cmd_role(args: argparse.Namespace) -> None:
    result = _vault(args).set_role(args.case_id, args.username, args.role)
    out.emit(args, result, f"{shown(result['username'])} is now {result['role']} of the case.")


def cmd_members(args: argparse.Namespace) -> None:
    vault = _vault(args)
    members = vault.members(args.case_id)
    hold_cli.notice(args, vault, args.case_id, stderr=False)
    rows = [{**m, "trust": "KEY CHANGED" if m["trust"] == "changed" else m["trust"]}
            for m in members]
    out.emit(args, members, out.table(rows, ["username", "role", "trust"]))


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
    events = vault.audit(args.case_id, with_paths=True)
    rows = [{**e, "actor": _who(e["actor"], e.get("actor_trust")),
             "path": e.get("target_path") or ""} for e in events]
    out.emit(args, events, out.table(rows, ["index", "time", "actor", "action", "target",
                                            "path"]))


def cmd_fingerprint(args: argparse.Namespace) -> None:
    result = _vault(args).fingerprint(args.username)
    state = "verified" if result["verified"] else "not verified"
    if result.get("trust") == "changed":
        state = "not verified; KEY CHANGED since it was pinned"
    out.emit(args, result,
             f"{shown(result['username'])}: {result['safety_number']} ({state})")


def cmd_trust(args: argparse.Namespace) -> None:
    result = _vault(args).trust(args.username, args.safety_number)
    out.emit(args, result, f"Trusted the key of {shown(result['username'])}.")


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
    p.add_argument("--source", metavar="TEXT", default="",
                   help="where the files came from (recorded in each file's intake record)")
    p.add_argument("--note", metavar="TEXT", default="",
                   help="a note for the intake record (chain of custody)")
    p.add_argument("--yes", action="store_true",
                   help="confirm members whose keys are not verified without asking")

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
    p.add_argument("--yes", action="store_true",
                   help="confirm a colleague whose key is not verified without asking")

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

    custody_cli.register(add, _vault)
    hold_cli.register(add, _vault)
    legal_cli.register(add, _vault)

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
