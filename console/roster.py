"""The roster (排班): the clerk directory (工号, name, photo), each hall's counters and the
terminal at each, and who sat where.

A login or logout is the terminal's retained `config` (the contract's `staff`, `staff_name`,
`counter`), published by the caller through the hall link; this module keeps the directory,
the counters and the history (`seating`), each change in the audit trail. The hall's
terminals are the broker's roster of devices (`svc-broker`'s devices.txt).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass

from collector.known import KnownDevices
from console import audit
from firmware import contract

PHOTO_MAX_BYTES = 512 * 1024
PHOTO_TYPES = {  # what a photo's first bytes say it is
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}
SEEN = "(terminal)"  # the actor of a login seen on a terminal, not made in the console


class RosterError(ValueError):
    """A clerk, counter or photo the roster cannot take."""


@dataclass(frozen=True)
class Clerk:
    staff: str
    name: str
    has_photo: bool


def photo_type(data: bytes) -> str:
    """The photo's type from its bytes (never from what the browser claims)."""
    if len(data) > PHOTO_MAX_BYTES:
        raise RosterError(f"a photo is at most {PHOTO_MAX_BYTES // 1024} KB")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, kind in PHOTO_TYPES.items():
        if data.startswith(magic):
            return kind
    raise RosterError("a photo is a JPEG, PNG or WebP image")


def save_clerk(
    db: sqlite3.Connection, staff: str, name: str, photo: bytes | None, actor: str
) -> None:
    """Add a clerk or change their name (and photo, when one is given)."""
    name = name.strip()
    if not contract.valid_name("staff", staff):
        raise RosterError("工号 is 1 to 16 letters, digits, _ or -")
    if not name or len(name) > contract.STAFF_NAME_MAX or not name.isprintable():
        raise RosterError(f"a name is 1 to {contract.STAFF_NAME_MAX} printable characters")
    kind = photo_type(photo) if photo else None
    db.execute("BEGIN IMMEDIATE")
    try:
        old = db.execute("SELECT name FROM clerk WHERE staff = ?", (staff,)).fetchone()
        if old is None:
            db.execute(
                "INSERT INTO clerk (staff, name, photo, photo_type) VALUES (?, ?, ?, ?)",
                (staff, name, photo, kind),
            )
        else:
            db.execute("UPDATE clerk SET name = ? WHERE staff = ?", (name, staff))
            if photo:
                db.execute(
                    "UPDATE clerk SET photo = ?, photo_type = ? WHERE staff = ?",
                    (photo, kind, staff),
                )
        audit.record(
            db, actor, "save_clerk", staff,
            before=None if old is None else {"name": old["name"]},
            after={"name": name, "photo": bool(photo)},
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def clerks(db: sqlite3.Connection) -> list[Clerk]:
    rows = db.execute("SELECT staff, name, photo IS NOT NULL AS p FROM clerk ORDER BY staff")
    return [Clerk(r["staff"], r["name"], bool(r["p"])) for r in rows]


def clerk(db: sqlite3.Connection, staff: str) -> Clerk | None:
    r = db.execute(
        "SELECT staff, name, photo IS NOT NULL AS p FROM clerk WHERE staff = ?", (staff,)
    ).fetchone()
    return None if r is None else Clerk(r["staff"], r["name"], bool(r["p"]))


def photo(db: sqlite3.Connection, staff: str) -> tuple[bytes, str] | None:
    r = db.execute("SELECT photo, photo_type FROM clerk WHERE staff = ?", (staff,)).fetchone()
    return None if r is None or r["photo"] is None else (bytes(r["photo"]), r["photo_type"])


def counters(db: sqlite3.Connection, site: str) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT counter, device FROM counter WHERE site = ? ORDER BY counter", (site,)
    ).fetchall()


def check_counter(counter: str) -> None:
    if not contract.valid_name("counter", counter):
        raise RosterError("a counter is 1 to 8 letters, digits or -")


def set_counter(
    db: sqlite3.Connection, site: str, counter: str, device: str | None, actor: str
) -> None:
    """The terminal at a counter (None: none); a terminal serves one counter at a time."""
    check_counter(counter)
    if device is not None and not contract.valid_name("device", device):
        raise RosterError("not a terminal's name")
    db.execute("BEGIN IMMEDIATE")
    try:
        old = db.execute(
            "SELECT device FROM counter WHERE site = ? AND counter = ?", (site, counter)
        ).fetchone()
        if device is not None:  # taken from the counter it served
            db.execute(
                "UPDATE counter SET device = NULL WHERE site = ? AND device = ?", (site, device)
            )
        db.execute(
            "INSERT INTO counter (site, counter, device) VALUES (?, ?, ?)"
            " ON CONFLICT (site, counter) DO UPDATE SET device = excluded.device",
            (site, counter, device),
        )
        audit.record(
            db, actor, "set_counter", f"{site}/{counter}",
            before=None if old is None else {"device": old["device"]}, after={"device": device},
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def counter_of(db: sqlite3.Connection, site: str, device: str) -> str | None:
    """The counter a terminal stands at, or None."""
    row = db.execute(
        "SELECT counter FROM counter WHERE site = ? AND device = ?", (site, device)
    ).fetchone()
    return None if row is None else str(row["counter"])


def record_seating(
    db: sqlite3.Connection,
    site: str,
    device: str,
    counter: str | None,
    staff: str | None,
    *,
    actor: str,
    now: float | None = None,
) -> bool:
    """Keep a login (staff) or logout (None) in the history, unless the terminal's last
    entry says the same already; whether it was kept."""
    now = time.time() if now is None else now
    last = db.execute(
        "SELECT counter, staff FROM seating WHERE site = ? AND device = ?"
        " ORDER BY at DESC, id DESC",
        (site, device),
    ).fetchone()
    if last is not None and (last["staff"], last["counter"]) == (staff, counter):
        return False
    db.execute(
        "INSERT INTO seating (at, site, device, counter, staff, actor) VALUES (?, ?, ?, ?, ?, ?)",
        (now, site, device, counter, staff, actor),
    )
    if actor != SEEN:
        audit.record(
            db, actor, "log_in_clerk" if staff else "log_out_clerk", f"{site}/{device}",
            before=None if last is None else {"staff": last["staff"]},
            after={"staff": staff, "counter": counter}, at=now,
        )  # fmt: skip
    return True


def history(db: sqlite3.Connection, site: str, limit: int = 50) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT s.*, c.name FROM seating s LEFT JOIN clerk c ON c.staff = s.staff"
        " WHERE s.site = ? ORDER BY s.at DESC, s.id DESC LIMIT ?",
        (site, limit),
    ).fetchall()


def devices_by_site(known: KnownDevices | None) -> dict[str, list[str]]:
    """The broker's roster of devices, by hall; empty without one."""
    if known is None:
        return {}
    found: dict[str, list[str]] = defaultdict(list)
    for name in sorted(known.names()):
        site, _, device = name.partition("/")
        if contract.valid_name("site", site) and contract.valid_name("device", device):
            found[site].append(device)
    return dict(found)
