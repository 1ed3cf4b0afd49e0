"""Login sessions and the throttle in front of the password check.

A session is a random secret in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS); the
database keeps only its SHA-256, so a copy of the file logs nobody in. Each session has its
own CSRF token, which every form carries and every POST must return (`check_csrf`): a page of
another site can make a browser send the cookie, never read the token. Sessions live in the
database, not in a signed cookie, so logging out (or removing the user) ends them at once.

The throttle counts each source's wrong passwords before any hash is checked: guessing across
many accounts from one address is stopped there, and argon2's cost is never a free lever for
a stranger (users.py's per-account lock is the second line).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from console.users import User, get

COOKIE = "svc_console"
SECRET_BYTES = 32
SOURCE_FAILURES = 10  # wrong logins a source may make ...
SOURCE_WINDOW_S = 15 * 60  # ... in this long, before it must wait
SOURCES_REMEMBERED = 10_000  # the throttle's memory is bounded, oldest forgotten first


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start(db: sqlite3.Connection, user: User, now: float | None = None) -> tuple[str, str]:
    """A new session for a user who just logged in: (the cookie's secret, its CSRF token)."""
    now = time.time() if now is None else now
    secret, csrf = secrets.token_urlsafe(SECRET_BYTES), secrets.token_urlsafe(SECRET_BYTES)
    db.execute(
        "INSERT INTO session (token, user, csrf, created, seen) VALUES (?, ?, ?, ?, ?)",
        (_digest(secret), user.name, csrf, now, now),
    )
    return secret, csrf


def find(
    db: sqlite3.Connection, secret: str, max_age_s: float, now: float | None = None
) -> Session | None:
    """The live session of that cookie, or None (unknown, ended, or older than max_age_s)."""
    if not secret or len(secret) > 2 * SECRET_BYTES:
        return None
    now = time.time() if now is None else now
    row = db.execute(
        "SELECT user, csrf, created FROM session WHERE token = ?", (_digest(secret),)
    ).fetchone()
    if row is None or now - row["created"] > max_age_s:
        return None
    user = get(db, row["user"])
    if user is None:
        return None
    return Session(user, row["csrf"])


def end(db: sqlite3.Connection, secret: str) -> None:
    db.execute("DELETE FROM session WHERE token = ?", (_digest(secret),))


def sweep(db: sqlite3.Connection, max_age_s: float, now: float | None = None) -> int:
    """Forget sessions past their age; the number forgotten."""
    now = time.time() if now is None else now
    return db.execute("DELETE FROM session WHERE created < ?", (now - max_age_s,)).rowcount


def check_csrf(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())


class Throttle:
    """Wrong logins per source address within a sliding window."""

    def __init__(self, limit: int = SOURCE_FAILURES, window_s: float = SOURCE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, source: str, now: float | None = None) -> float:
        """How long this source must wait before trying again; 0: it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if source not in self._failures:  # asking adds no entry: only failures take memory
                return 0.0
            failures = self._recent(source, now)
            if len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window_s - now

    def failed(self, source: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(source, now).append(now)
            self._failures.move_to_end(source)
            while len(self._failures) > SOURCES_REMEMBERED:
                self._failures.popitem(last=False)

    def _recent(self, source: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(source, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures
