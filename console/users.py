"""Who may log in to the console, as what, for which halls.

- manager: acts on their own halls only (`user_site`);
- appraiser: sees every hall and decides appeals;
- admin: everything, and the accounts.

Passwords are argon2id hashes (argon2-cffi's defaults, which follow RFC 9106), re-hashed at a
login when those defaults have grown. After MAX_FAILURES wrong passwords in a row an account
takes no login, right password or not, for LOCK_S seconds: guessing is throttled, and the
lock tells nothing about which passwords were near. A lock any stranger can keep up by
guessing is a nuisance as much as a defence: the web pages throttle each source before any
hash is checked (sessions.Throttle), the main defence against guessing across accounts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from console import audit
from firmware import contract

ROLES = ("manager", "appraiser", "admin")
MAX_FAILURES = 5
LOCK_S = 15 * 60
NAME_MAX = 32
PASSWORD_MIN = 10
PASSWORD_MAX = 256  # argon2 takes any length; a form field must not

RESERVED = ("?", "svc-console")  # the audit trail's actors for nobody logged in, the command line
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("a password nobody has")  # checked where no account is, to take as long
_hashing = threading.BoundedSemaphore(2)  # each hash takes 64 MiB: two at a time, one a core


class UserError(ValueError):
    """A name, role, site or password the console cannot take."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    sites: tuple[str, ...]  # a manager's halls; empty for the others, who see all

    def may_act_on(self, site: str) -> bool:
        return self.role != "manager" or site in self.sites


def add(
    db: sqlite3.Connection, name: str, role: str, sites: list[str], *, password: str, actor: str
) -> User:
    """A new account, in the audit trail (without its password)."""
    name = unicodedata.normalize("NFC", name)
    if not valid_name(name):
        raise UserError(f"a user's name is 1 to {NAME_MAX} printable characters, not {RESERVED}")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    bad = [site for site in sites if not contract.valid_name("site", site)]
    if bad:
        raise UserError(f"not a hall's site name: {', '.join(bad)}")
    if role == "manager" and not sites:
        raise UserError("a manager needs at least one hall (--site)")
    if role != "manager" and sites:
        raise UserError(f"an {role} sees every hall: no --site")
    if not _takeable(password):
        raise UserError(f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters of text")
    user = User(name, role, tuple(sorted(set(sites))))
    hashed = _hash(password)
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM user WHERE name = ?", (name,)).fetchone():
            raise UserError(f"there is a user {name!r} already")
        db.execute("INSERT INTO user (name, role, password) VALUES (?, ?, ?)", (name, role, hashed))
        db.executemany(
            "INSERT INTO user_site (user, site) VALUES (?, ?)", [(name, s) for s in user.sites]
        )
        audit.record(db, actor, "add_user", name, after={"role": role, "sites": list(user.sites)})
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return user


def set_password(db: sqlite3.Connection, name: str, password: str, *, actor: str) -> None:
    """A new password for an account, which also lifts a lock (the audit trail says who)."""
    if not _takeable(password):
        raise UserError(f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters of text")
    hashed = _hash(password)
    db.execute("BEGIN IMMEDIATE")
    try:
        changed = db.execute(
            "UPDATE user SET password = ?, failures = 0, locked_until = 0 WHERE name = ?",
            (hashed, name),
        ).rowcount
        if not changed:
            raise UserError(f"there is no user {name!r}")
        db.execute("DELETE FROM session WHERE user = ?", (name,))  # logged in elsewhere: out
        audit.record(db, actor, "set_password", name)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def remove(db: sqlite3.Connection, name: str, *, actor: str) -> None:
    """An account gone, and its sessions with it; the audit trail keeps what it did."""
    db.execute("BEGIN IMMEDIATE")
    try:
        user = get(db, name)
        if user is None:
            raise UserError(f"there is no user {name!r}")
        db.execute("DELETE FROM user WHERE name = ?", (name,))  # sessions and halls cascade
        audit.record(
            db, actor, "remove_user", name, before={"role": user.role, "sites": list(user.sites)}
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def log_in(
    db: sqlite3.Connection, name: str, password: str, now: float | None = None
) -> User | None:
    """The user, when the name and password are right and the account not locked; None
    otherwise (which of those is not said, nor shown by the time taken: every path hashes
    once). Each wrong password counts; MAX_FAILURES in a row lock the account for LOCK_S
    seconds. Every attempt is in the audit trail, under the user's name only when it
    succeeded. The hash is checked outside any transaction, so logins never queue on it."""
    now = time.time() if now is None else now
    name = unicodedata.normalize("NFC", name)
    if not _takeable(password, checking=True):
        password = ""  # never hashed at that length, nor as text it cannot encode: wrong
    row = (
        db.execute("SELECT * FROM user WHERE name = ?", (name,)).fetchone()
        if valid_name(name)
        else None
    )
    right = _verify(row["password"] if row is not None else _DUMMY, password)
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT * FROM user WHERE name = ?", (name,)).fetchone()
        user = None
        if row is None:
            outcome = "unknown_user"
        elif row["locked_until"] > now:
            outcome = "locked"
        elif not right:
            failures = row["failures"] + 1
            locked = now + LOCK_S if failures >= MAX_FAILURES else 0.0
            db.execute(
                "UPDATE user SET failures = ?, locked_until = ? WHERE name = ?",
                (0 if locked else failures, locked, name),
            )
            outcome = "locked_now" if locked else "wrong_password"
        else:
            if _hasher.check_needs_rehash(row["password"]):
                db.execute("UPDATE user SET password = ? WHERE name = ?", (_hash(password), name))
            db.execute("UPDATE user SET failures = 0 WHERE name = ?", (name,))
            user, outcome = _load(db, row), "ok"
        # only a name that is an account's: a password typed in the name field is never kept
        subject = name if row is not None else "(no such user)"
        actor = name if user is not None else "?"
        audit.record(db, actor, "log_in", subject, after={"outcome": outcome}, at=now)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return user


def valid_name(name: str) -> bool:
    return (
        0 < len(name) <= NAME_MAX
        and name.isprintable()
        and name == name.strip()
        and name not in RESERVED
        and name == unicodedata.normalize("NFC", name)
    )


def get(db: sqlite3.Connection, name: str) -> User | None:
    row = db.execute("SELECT * FROM user WHERE name = ?", (name,)).fetchone()
    return None if row is None else _load(db, row)


def _load(db: sqlite3.Connection, row: sqlite3.Row) -> User:
    sites = db.execute("SELECT site FROM user_site WHERE user = ? ORDER BY site", (row["name"],))
    return User(row["name"], row["role"], tuple(s["site"] for s in sites))


def _hash(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def _verify(hashed: str, password: str) -> bool:
    try:
        with _hashing:
            return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _takeable(password: str, checking: bool = False) -> bool:
    """Text argon2 can take, of a length a form may send (and, for a new one, long enough)."""
    shortest = 0 if checking else PASSWORD_MIN
    if not shortest <= len(password) <= PASSWORD_MAX:
        return False
    try:
        password.encode()
    except UnicodeEncodeError:  # a lone surrogate, from bytes that were not UTF-8
        return False
    return True
