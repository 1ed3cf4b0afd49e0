"""The console's own state in SQLite (`SVC_CONSOLE_DB`): who may log in, the audit trail,
the halls' clerks, counters, cases, appeals and notifications. The ratings stay in InfluxDB.

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
import threading
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
    # 2: the halls' work: sessions, clerks and counters, cases, appeals, notifications
    """
    CREATE TABLE session (
        token TEXT PRIMARY KEY,            -- SHA-256 of the cookie's secret, never the secret
        user TEXT NOT NULL REFERENCES user (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,                -- the token every form of this session carries
        created REAL NOT NULL,
        seen REAL NOT NULL
    ) STRICT;
    CREATE TABLE region (
        name TEXT PRIMARY KEY,
        callback_days INTEGER NOT NULL DEFAULT 1 CHECK (callback_days BETWEEN 1 AND 60),
        fix_days INTEGER NOT NULL DEFAULT 5 CHECK (fix_days BETWEEN 1 AND 60)
    ) STRICT;
    CREATE TABLE hall (
        site TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',     -- 营业厅 name shown on its pages and wall
        region TEXT REFERENCES region (name),
        token TEXT                         -- SHA-256 of its prompt API token; null: none issued
    ) STRICT;
    CREATE TABLE clerk (
        staff TEXT PRIMARY KEY,            -- 工号, the contract's staff pattern
        name TEXT NOT NULL,
        photo BLOB,
        photo_type TEXT CHECK (photo_type IN ('image/jpeg', 'image/png', 'image/webp'))
    ) STRICT;
    CREATE TABLE counter (
        site TEXT NOT NULL,
        counter TEXT NOT NULL,
        device TEXT,                       -- the terminal at that window; null: none yet
        PRIMARY KEY (site, counter)
    ) STRICT;
    CREATE UNIQUE INDEX counter_device ON counter (site, device) WHERE device IS NOT NULL;
    CREATE TABLE seating (                 -- who sat where: each login and logout, kept
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        counter TEXT,
        staff TEXT,                        -- null: logged out
        actor TEXT NOT NULL                -- a user, or "(terminal)" for a change seen, not made
    ) STRICT;
    CREATE INDEX seating_where ON seating (site, device, at);
    CREATE TABLE duty_person (             -- a hall's duty managers (带班), in rota order
        site TEXT NOT NULL,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        email TEXT NOT NULL DEFAULT '',
        mobile TEXT NOT NULL DEFAULT '',   -- for a robot's @ of them
        PRIMARY KEY (site, name)
    ) STRICT;
    CREATE TABLE duty_day (                -- a day the rota does not decide
        site TEXT NOT NULL,
        day TEXT NOT NULL,                 -- ISO date
        name TEXT NOT NULL,
        PRIMARY KEY (site, day)
    ) STRICT;
    CREATE TABLE channel (                 -- where a hall's notifications go
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('wecom', 'dingtalk', 'feishu', 'email')),
        target TEXT NOT NULL,              -- a robot's webhook URL (it holds its key); e-mail:
                                           -- an address for a duty manager with none, or ''
        secret TEXT NOT NULL DEFAULT ''    -- a robot's signing secret ('': not signed)
    ) STRICT;
    CREATE TABLE poor_case (               -- 差评处置: one per poor rating
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        pressed REAL,                      -- unix seconds; null: undated
        counter TEXT,
        staff TEXT,
        score INTEGER NOT NULL,
        reason TEXT,
        suspect INTEGER NOT NULL DEFAULT 0,
        opened REAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('alert', 'reconcile')),
        state TEXT NOT NULL DEFAULT 'open'
            CHECK (state IN ('open', 'called_back', 'fixed', 'closed')),
        callback_due TEXT NOT NULL,        -- ISO dates, on the official calendar
        fix_due TEXT NOT NULL,
        calendar_known INTEGER NOT NULL,   -- 0: a year the calendar does not know, weekdays
        UNIQUE (site, device, seq)
    ) STRICT;
    CREATE INDEX poor_case_open ON poor_case (site, state);
    CREATE TABLE case_step (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES poor_case (id),
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        state TEXT NOT NULL,
        note TEXT NOT NULL
    ) STRICT;
    CREATE TABLE appeal (                  -- 申诉 on one rating, and the appraisal's decision
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        staff TEXT,
        ground TEXT NOT NULL
            CHECK (ground IN ('mistaken', 'malicious', 'device_fault', 'other')),
        note TEXT NOT NULL,
        filed_by TEXT NOT NULL,
        filed_at REAL NOT NULL,
        decision TEXT NOT NULL DEFAULT 'pending'
            CHECK (decision IN ('pending', 'upheld', 'rejected')),
        decided_by TEXT,
        decided_at REAL,
        decision_note TEXT,
        UNIQUE (site, device, seq)
    ) STRICT;
    CREATE TABLE suspect_review (          -- a manager's verdict on a suspect rating
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('confirmed', 'cleared')),
        by TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (site, device, seq)
    ) STRICT;
    CREATE TABLE influx_pending (          -- a decision InfluxDB has not taken yet: retried
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        since REAL NOT NULL,
        PRIMARY KEY (site, device, seq)
    ) STRICT;
    CREATE TABLE outbox (                  -- notifications, until each is sent
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,          -- what it is about and where it goes: never twice
        channel INTEGER NOT NULL REFERENCES channel (id) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        link TEXT NOT NULL,
        recipient TEXT NOT NULL DEFAULT '',  -- the duty manager's e-mail or mobile, at enqueue
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL,
        sent REAL,
        last_error TEXT
    ) STRICT;
    CREATE INDEX outbox_due ON outbox (sent, next_try);
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


class Connections:
    """One connection a thread, to a file `connect` has upgraded: the web server's worker
    threads each keep theirs (sqlite3 connections are not shared between threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        connect(path).close()  # made and upgraded once, at start
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        return conn
