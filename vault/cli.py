"""casevault-server: serve | migrate | invite.

Errors are one line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from vault.config import Settings

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3  # what uvicorn.run exits with when the server cannot start


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    if getattr(args, "trusted_proxy", None):
        overrides["trusted_proxies"] = args.trusted_proxy
    return Settings(**overrides)


def _migrate(settings: Settings) -> None:
    from vault.db.migrate import upgrade_database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.resolved_database_url())


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--trusted-proxy", action="append", metavar="ADDR",
        help="reverse proxy whose X-Forwarded-For is believed: an address or network, repeatable "
             "or comma-separated (default CASEVAULT_TRUSTED_PROXIES, else none: the header is "
             "ignored)",
    )


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from vault.api.app import create_app
    from vault.serve import server_config

    # A fresh embedded database is created and brought to the current schema right here, so
    # the quick start needs no separate step.
    _migrate(settings)
    app = create_app(settings)
    print(f"casevault-server listening on http://{args.host}:{args.port}", file=sys.stderr)
    if settings.trusted_proxies:
        proxies = ", ".join(settings.trusted_proxies)
        print(f"casevault-server: X-Forwarded-For believed from {proxies}", file=sys.stderr)
    server = uvicorn.Server(server_config(app, settings, host=args.host, port=args.port))
    server.run()
    # uvicorn has logged why it could not start (a port in use, say).
    return 0 if server.started else EXIT_STARTUP


def _run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _migrate(settings)
    print("database is at the current schema")
    return 0


def _invite(settings: Settings, args: argparse.Namespace) -> int:
    from vault.db.base import utcnow
    from vault.db.engine import make_engine, make_sessionmaker
    from vault.services.accounts import create_invite

    _migrate(settings)
    engine = make_engine(settings.resolved_database_url())
    try:
        with make_sessionmaker(engine)() as db:
            code = create_invite(db, now=utcnow())
    finally:
        engine.dispose()
    print(code)
    if not settings.invite_only:
        print("note: registration is open (CASEVAULT_INVITE_ONLY is not set)", file=sys.stderr)
    return 0


def _verify_log(settings: Settings, args: argparse.Namespace) -> int:
    from vault.logverify import run_verify_log

    return run_verify_log(settings)


def _gc(settings: Settings, args: argparse.Namespace) -> int:
    from vault.db.engine import make_engine, make_sessionmaker
    from vault.services.gc import collect_garbage
    from vault.storage import FilesystemBlobStore

    _migrate(settings)
    engine = make_engine(settings.resolved_database_url())
    store = FilesystemBlobStore(settings.resolved_blob_dir())
    try:
        with make_sessionmaker(engine)() as db:
            report = collect_garbage(db, store, settings)
    finally:
        engine.dispose()
    print(
        f"removed {report.sessions_removed} abandoned uploads, {report.blobs_removed} orphan "
        f"blobs, {report.incomplete_writes_removed} unfinished writes; logged the counts of "
        f"{report.event_windows_logged} closed event windows"
    )
    return 0


# Other features add subcommands here: name -> (help, add_arguments, run(settings, args) -> int).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None, Callable]] = {
    "serve": ("run the HTTP server (migrates the database first)", _serve_arguments, _serve),
    "migrate": ("apply database migrations", None, _run_migrate),
    "invite": ("print a one-time invite code", None, _invite),
    "verify-log": ("recompute the audit log and check every stored hash", None, _verify_log),
    "gc": ("remove abandoned uploads and unreferenced blobs (safe while serving)", None, _gc),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casevault-server", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--data-dir", help="server data folder (default ./casevault-data)")
        command.add_argument("--database-url", help="SQLAlchemy URL (default SQLite in data dir)")
        if add_arguments is not None:
            add_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # The data folder holds the database, blobs and the server's own keys: nothing the server
    # creates there is for other local users to read, whatever the caller's umask.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        return COMMANDS[args.command][2](settings, args)
    except ValidationError as exc:
        print(f"casevault-server: invalid settings: {exc.errors()[0]['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        print(f"casevault-server: database error: {type(exc).__name__}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, RuntimeError) as exc:
        print(f"casevault-server: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
