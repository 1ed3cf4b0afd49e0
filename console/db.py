"""The console's own state in SQLite (`SVC_CONSOLE_DB`): who may log in, and the audit trail.
The ratings stay in InfluxDB.

The schema upgrades itself on open: each entry of MIGRATIONS is applied once, in order, in
one transaction with the schema version (SQLite's `user_version`), so a console that stops
half-way starts again from a whole version. A file from a newer console is refused rather
than written by an older one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# each a script of statements separated by ";" (none inside a statement or a comment)
MIGRATIONS = (
    # 1: accounts and the audit trail
    """
    CREATE TABLE user (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('manager', 'appraiser', 'admin')),
        password TEXT NOT NULL,            -- argon2id, with its parameters and salt
        failures INTEGER NOT NULL DEFAULT 0,  -- wrong passwords in a row
        locked_until REAL NOT NULL DEFAULT 0  -- unix seconds: no login before
    ) STRICT;
    CREATE TABLE user_site (
        user TEXT NOT NULL REFERENCES user (name) ON DELETE CASCADE,
        site TEXT NOT NULL,
        PRIMARY KEY (user, site)
    ) STRICT;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,                  -- unix seconds
        actor TEXT NOT NULL,               -- a user, or "svc-console" for the command line
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        before TEXT,                       -- JSON, or null
        after TEXT                         -- JSON, or null
    ) STRICT;
    CREATE INDEX audit_at ON audit (at);
    """,
)


class SchemaError(RuntimeError):
    """The file is not a console's, or is of a newer console than this one."""


def connect(path: Path) -> sqlite3.Connection:
    """The database, its schema brought up to this version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA busy_timeout = 5000")
    try:
        _upgrade(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise SchemaError(
            f"{path} is of schema {version}, newer than this console's {len(MIGRATIONS)}"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        statements = [s for s in script.split(";") if s.strip()]
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
