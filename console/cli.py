"""svc-console: the hall console.

    svc-console add-user NAME --role manager|appraiser|admin [--site SITE ...] [--db FILE]

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

from console import db, users

CLI_ACTOR = "svc-console"  # who did it, in the audit trail, for the command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-console", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--db", type=Path, default=Path(os.environ.get("SVC_CONSOLE_DB", "console.db"))
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_add = sub.add_parser("add-user", help="an account for a manager, appraiser or admin")
    p_add.add_argument("name")
    p_add.add_argument("--role", choices=users.ROLES, required=True)
    p_add.add_argument(
        "--site", action="append", default=[], help="a manager's hall (again for more)"
    )
    args = parser.parse_args(argv)
    try:
        password = _password()
        with closing(db.connect(args.db)) as conn:  # sqlite3's own manager only commits
            user = users.add(
                conn, args.name, args.role, args.site, password=password, actor=CLI_ACTOR
            )
    except (users.UserError, db.SchemaError) as e:
        print(f"svc-console: {e}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as e:
        print(f"svc-console: {args.db}: {e}", file=sys.stderr)
        return 1
    halls = f" for {', '.join(user.sites)}" if user.sites else ""
    print(f"user {user.name} ({user.role}){halls} added to {args.db}")
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
