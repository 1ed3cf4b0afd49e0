"""The console's own state in SQLite (`SVC_CONSOLE_DB`): who may log in, and the audit trail.
The ratings stay in InfluxDB.

The file holds password hashes: it is made 0600 in a folder made 0700, for the user the
console runs as (who must also own it: SQLite in WAL mode writes beside it even to read).

The schema upgrades itself on open: each entry of MIGRATIONS is applied once, in order, in
one transaction with the schema version (SQLite's `user_version`), so a console that stops
half-way starts again from a whole version, and two consoles opening a new file at once
upgrade it once. A file of another program (its `application_id`), or of a newer console, is
refused rather than written.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

APPLICATION_ID = 0x5356_4343  # "SVCC": a console's file, in SQLite's header
WAL_WAIT_S = 5.0

# each a script of SQL statements, each ending with ";"
MIGRATIONS = (
    # 1: accounts and the audit trail
    f"""
    PRAGMA application_id = {APPLICATION_ID};
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
        actor TEXT NOT NULL,               -- a user; "?" for someone not logged in
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
    _make_private(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)  # transactions are explicit
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        _upgrade(db, path)
        _write_ahead(db)
    except BaseException:
        db.close()
        raise
    return db


def _make_private(path: Path) -> None:
    """The folder (when made here) 0700, the file 0600, before SQLite writes a byte."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # one made before this version, or by hand


def _write_ahead(db: sqlite3.Connection) -> None:
    """WAL: readers never wait for a writer. Turning it on takes the file alone, which SQLite
    does not wait for as it waits for a write lock: a console opening the file beside another
    tries again for a while (once on, it stays on, and this is at once)."""
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")  # the version read and raised under one write lock
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        owner = int(db.execute("PRAGMA application_id").fetchone()[0])
        tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if version > len(MIGRATIONS):
            raise SchemaError(
                f"{path} is of schema {version}, newer than this console's {len(MIGRATIONS)}"
            )
        if owner not in (0, APPLICATION_ID) or (version == 0 and tables):
            raise SchemaError(f"{path} is another program's database, not a console's")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """A script's statements, as SQLite's own tokenizer ends them (a ";" in a comment or a
    string, or inside a trigger's body, does not end one)."""
    found, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        raise SchemaError(f"a migration ends in an unfinished statement: {pending.strip()[:60]}")
    return found
