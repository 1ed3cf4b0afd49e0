"""svc-console: the hall console.

    svc-console [--config FILE] serve
    svc-console [--db FILE] add-user NAME --role manager|appraiser|admin [--site SITE ...]
    svc-console [--db FILE] set-password NAME     (a forgotten password; lifts a lock too)
    svc-console [--db FILE] remove-user NAME

`serve` runs the web console with its settings (docs/console.md: a TOML file, then
SVC_CONSOLE_ variables over it); it exits 2 on settings it cannot use.

The password is asked twice on a terminal, or read as the first line of standard input (for
a script: `printf '%s\\n' "$PASSWORD" | svc-console add-user ...`); it is never an argument,
where `ps` would show it. The database is SVC_CONSOLE_DB (default console.db), made and
upgraded as it is opened.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import uvicorn

from collector import logs
from collector.settings import SettingsError, from_toml
from console import db, settings, users
from console.service import Service
from console.web.app import build

CLI_ACTOR = "svc-console"  # who did it, in the audit trail, for the command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-console", description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="the database (default: the settings' db)")
    parser.add_argument("--config", type=Path, help="the TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web console")
    p_add = sub.add_parser("add-user", help="an account for a manager, appraiser or admin")
    p_add.add_argument("name")
    p_add.add_argument("--role", choices=users.ROLES, required=True)
    p_add.add_argument(
        "--site", action="append", default=[], help="a manager's hall (again for more)"
    )
    p_pw = sub.add_parser("set-password", help="a new password for an account; lifts its lock")
    p_pw.add_argument("name")
    p_rm = sub.add_parser("remove-user", help="an account gone, its sessions ended")
    p_rm.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.config)
    try:
        args.db = args.db or _db_path(args.config)
        if args.command == "remove-user":
            with closing(db.connect(args.db)) as conn:
                users.remove(conn, args.name, actor=CLI_ACTOR)
            print(f"user {args.name} removed from {args.db}")
            return 0
        password = _password()
        with closing(db.connect(args.db)) as conn:  # sqlite3's own manager only commits
            if args.command == "set-password":
                users.set_password(conn, args.name, password, actor=CLI_ACTOR)
                print(f"password of {args.name} set in {args.db}; any lock lifted")
                return 0
            user = users.add(
                conn, args.name, args.role, args.site, password=password, actor=CLI_ACTOR
            )
    except (users.UserError, db.SchemaError, SettingsError) as e:
        print(f"svc-console: {e}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as e:
        print(f"svc-console: {args.db}: {e}", file=sys.stderr)
        return 1
    halls = f" for {', '.join(user.sites)}" if user.sites else ""
    print(f"user {user.name} ({user.role}){halls} added to {args.db.resolve()}")
    return 0


def _db_path(config_file: Path | None) -> Path:
    """The database the settings name (the file's `db`, SVC_CONSOLE_DB over it), as serve
    would open it, without asking anything else of the settings."""
    named = os.environ.get(settings.PREFIX + "CONFIG")
    path = config_file or (Path(named) if named else None)
    merged = from_toml(path, settings.FILE_KEYS, settings.variable) if path else {}
    merged.update(os.environ)
    return Path(merged.get(settings.variable("db")) or str(settings.DEFAULTS["db"]))


def _serve(config_file: Path | None) -> int:
    try:
        chosen = settings.load(config_file=config_file)
    except SettingsError as e:
        print(f"svc-console: {e}", file=sys.stderr)
        return 2
    logs.configure(chosen.log_level)
    for path in (chosen.tls_cert, chosen.tls_key):
        if path is not None and not os.access(path, os.R_OK):
            print(f"svc-console: {path}: cannot be read (the TLS files)", file=sys.stderr)
            return 2
    try:
        service = Service(chosen)
    except db.SchemaError as e:
        print(f"svc-console: {e}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as e:
        print(f"svc-console: {chosen.db}: {e}", file=sys.stderr)
        return 2
    app = build(service.console, service.start)
    uvicorn.run(
        app,
        host=chosen.host,
        port=chosen.port,
        ssl_certfile=str(chosen.tls_cert) if chosen.tls_cert else None,
        ssl_keyfile=str(chosen.tls_key) if chosen.tls_key else None,
        log_config=None,  # its access log through the root logger, ours through structlog
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the client's address is the connection's: the throttle counts it
    )
    return 0


def _password() -> str:
    try:
        if not sys.stdin.isatty():
            line = sys.stdin.readline(users.PASSWORD_MAX + 3)  # never all of an endless input
            if not line:
                raise users.UserError("no password on standard input")
            return line.rstrip("\r\n")
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise users.UserError("the two passwords differ")
    except EOFError:
        raise users.UserError("no password given") from None
    return first


if __name__ == "__main__":
    sys.exit(main())
