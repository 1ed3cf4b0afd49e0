"""The hall's duty manager of the day (带班): who the notifications of that day go to.

Each hall keeps a rota (`duty_person`, in order of `position`) and may plan single days
(`duty_day`), which override it. The rota turns one person a calendar day, in rota order,
counted from a fixed anchor (ROTA_ANCHOR, the first on the rota): halls open on weekends and
holidays too, so every day has someone. Changing the rota re-deals the days from the anchor,
so the days a hall wants to keep as they were are planned explicitly. A planned day names one
of the rota; should that person leave the rota later, the plan still stands and they are
named without contact details (the message says who, the robot @s nobody).

Every change is in the audit trail, with the rota or plan before and after.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from console import audit
from firmware import contract

ROTA_ANCHOR = dt.date(2026, 1, 1)
NAME_MAX = 32
EMAIL_MAX = 254  # RFC 5321's longest path
ROTA_MAX = 100
# an address smtplib sends without SMTPUTF8: ASCII atoms, a dotted domain
EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
MOBILE = re.compile(r"\+?[0-9]{5,20}")


class DutyError(ValueError):
    """A rota or plan the console cannot take."""


@dataclass(frozen=True)
class DutyPerson:
    name: str
    email: str = ""  # empty: none (the e-mail channel falls back to its own address)
    mobile: str = ""  # empty: none (robots @ nobody)


def set_rota(
    db: sqlite3.Connection,
    site: str,
    people: Sequence[DutyPerson],
    *,
    actor: str,
    now: float | None = None,
) -> list[DutyPerson]:
    """The hall's rota replaced by `people`, in this order (empty: no rota); the people as
    stored (names NFC, contacts stripped)."""
    _check_site(site)
    if len(people) > ROTA_MAX:
        raise DutyError(f"a rota has at most {ROTA_MAX} people")
    checked = [_checked(person) for person in people]
    names = [person.name for person in checked]
    if len(set(names)) != len(names):
        raise DutyError("each person is on the rota once")
    db.execute("BEGIN IMMEDIATE")
    try:
        before = rota(db, site)
        db.execute("DELETE FROM duty_person WHERE site = ?", (site,))
        db.executemany(
            "INSERT INTO duty_person (site, name, position, email, mobile) VALUES (?, ?, ?, ?, ?)",
            [(site, p.name, i, p.email, p.mobile) for i, p in enumerate(checked)],
        )
        audit.record(
            db,
            actor,
            "set_duty_rota",
            site,
            before={"rota": [asdict(p) for p in before]},
            after={"rota": [asdict(p) for p in checked]},
            at=now,
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return checked


def plan_day(
    db: sqlite3.Connection,
    site: str,
    day: dt.date,
    name: str | None,
    *,
    actor: str,
    now: float | None = None,
) -> None:
    """`name` (one of the rota) on duty that day whatever the rota says; None: the rota
    decides again."""
    _check_site(site)
    if name is not None:
        name = _checked_name(name)
    db.execute("BEGIN IMMEDIATE")
    try:
        if (
            name is not None
            and not db.execute(
                "SELECT 1 FROM duty_person WHERE site = ? AND name = ?", (site, name)
            ).fetchone()
        ):
            raise DutyError(f"{name!r} is not on {site}'s duty rota")
        old = db.execute(
            "SELECT name FROM duty_day WHERE site = ? AND day = ?", (site, day.isoformat())
        ).fetchone()
        if name is None:
            db.execute("DELETE FROM duty_day WHERE site = ? AND day = ?", (site, day.isoformat()))
        else:
            db.execute(
                "INSERT INTO duty_day (site, day, name) VALUES (?, ?, ?)"
                " ON CONFLICT (site, day) DO UPDATE SET name = excluded.name",
                (site, day.isoformat(), name),
            )
        audit.record(
            db,
            actor,
            "plan_duty_day",
            f"{site} {day.isoformat()}",
            before=None if old is None else {"name": old["name"]},
            after=None if name is None else {"name": name},
            at=now,
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def on_duty(db: sqlite3.Connection, site: str, day: dt.date) -> DutyPerson | None:
    """The hall's duty manager that day: the planned one, else the rota's; None: neither."""
    planned = db.execute(
        "SELECT name FROM duty_day WHERE site = ? AND day = ?", (site, day.isoformat())
    ).fetchone()
    people = rota(db, site)
    if planned is not None:
        found = [person for person in people if person.name == planned["name"]]
        return found[0] if found else DutyPerson(planned["name"])
    if not people:
        return None
    return people[(day - ROTA_ANCHOR).days % len(people)]


def planned_days(db: sqlite3.Connection, site: str, since: dt.date) -> list[tuple[dt.date, str]]:
    """The days planned explicitly from `since` on, in date order, with who."""
    rows = db.execute(
        "SELECT day, name FROM duty_day WHERE site = ? AND day >= ? ORDER BY day",
        (site, since.isoformat()),
    )
    return [(dt.date.fromisoformat(row["day"]), row["name"]) for row in rows]


def rota(db: sqlite3.Connection, site: str) -> list[DutyPerson]:
    """The hall's rota, in order."""
    rows = db.execute(
        "SELECT name, email, mobile FROM duty_person WHERE site = ? ORDER BY position", (site,)
    )
    return [DutyPerson(row["name"], row["email"], row["mobile"]) for row in rows]


def plausible_email(address: str) -> bool:
    """An address of the usual shape, that smtplib sends without SMTPUTF8 (no header can be
    smuggled in: no spaces, no line breaks)."""
    return len(address) <= EMAIL_MAX and EMAIL.fullmatch(address) is not None


def _check_site(site: str) -> None:
    if not contract.valid_name("site", site):
        raise DutyError(f"not a hall's site name: {site!r}")


def _checked_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    if not (0 < len(name) <= NAME_MAX and name.isprintable() and name == name.strip()):
        raise DutyError(f"a duty manager's name is 1 to {NAME_MAX} printable characters")
    return name


def _checked(person: DutyPerson) -> DutyPerson:
    email, mobile = person.email.strip(), person.mobile.strip()
    if email and not plausible_email(email):
        raise DutyError(f"not an e-mail address: {email[:EMAIL_MAX]!r}")
    if mobile and not MOBILE.fullmatch(mobile):
        raise DutyError(f"a mobile number is 5 to 20 digits, maybe after a +, not {mobile[:40]!r}")
    return DutyPerson(_checked_name(person.name), email, mobile)
