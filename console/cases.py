"""The follow-up register (差评处置): one case per poor rating, and its steps.

A case is made from the collector's `poor_rating` alert at once, and from the minute's
reconciliation against InfluxDB (reconcile.py) for an alert that was lost: both land on the
same row, keyed by the rating's identity (site, device, seq), so an alert that comes twice,
a terminal's resend, or the reconciliation finding it again, make no second case.

Deadlines are working days on the official calendar (workdays.py) from the day the rating
was pressed, in the hall's time zone: the call-back (回访) within `callback_days`, the fix
(整改) within `fix_days`, per region (table `region`), the settings' defaults elsewhere. A
case moves open → called_back → fixed → closed, one step at a time, each with a note and
who took it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from console import audit, workdays
from firmware import contract

STATES = ("open", "called_back", "fixed", "closed")
STATE_NAMES = {"open": "待回访", "called_back": "已回访", "fixed": "已整改", "closed": "已关闭"}
NOTE_MAX = 500


class CaseError(ValueError):
    """A step the case cannot take, or a note it cannot keep."""


@dataclass(frozen=True)
class PoorRating:
    """A poor rating, from its alert or from InfluxDB."""

    site: str
    device: str
    seq: int
    pressed_ms: int | None  # None: undated
    counter: str | None
    staff: str | None
    score: int
    reason: str | None
    suspect: bool = False


@dataclass(frozen=True)
class Deadlines:
    callback_days: int
    fix_days: int


def from_alert(site: str, alert: dict[str, Any]) -> PoorRating | str:
    """The poor rating an alert names, or why it names none (a reason for the log)."""
    problem = _alert_problem(site, alert)
    if problem:
        return problem
    a = alert
    return PoorRating(
        site, a["device"], a["seq"], a.get("ts"), a.get("counter"), a.get("staff"),
        a["score"], a.get("reason"),
    )  # fmt: skip


def _alert_problem(site: str, alert: dict[str, Any]) -> str | None:
    device, seq, score, ts = (alert.get(k) for k in ("device", "seq", "score", "ts"))
    reason = alert.get("reason")
    names = {k: alert.get(k) for k in ("counter", "staff")}
    bad_name = [k for k, v in names.items() if v is not None and not contract.valid_name(k, v)]
    checks = (
        (alert.get("kind") != "poor_rating", f"kind {alert.get('kind')!r}"),
        (alert.get("site", site) != site, "its site is not its topic's"),
        (
            not contract.valid_name("device", device) or not contract.valid_seq(seq),
            "no device or seq of the contract's form",
        ),
        (
            not isinstance(score, int)
            or isinstance(score, bool)
            or not 1 <= score <= contract.POOR_MAX,
            f"score {score!r} is not poor",
        ),
        (
            ts is not None and not (isinstance(ts, int) and 0 < ts <= contract.MAX_TS_MS),
            f"ts {ts!r} is not a time",
        ),
        (bool(bad_name), f"{bad_name} break the contract's name rule"),
        (reason is not None and reason not in contract.REASONS, f"reason {reason!r}"),
    )
    return next((why for failed, why in checks if failed), None)


def checked_note(note: str, error: type[ValueError]) -> str:
    """A note on a step or a decision: 1 to NOTE_MAX printable characters, stripped."""
    note = note.strip()
    if not note or len(note) > NOTE_MAX or not note.replace("\n", "").isprintable():
        raise error(f"说明为 1 到 {NOTE_MAX} 个字符，不含控制字符。")
    return note


def deadlines(db: sqlite3.Connection, site: str, default: Deadlines) -> Deadlines:
    row = db.execute(
        "SELECT r.callback_days, r.fix_days FROM hall h JOIN region r ON r.name = h.region "
        "WHERE h.site = ?",
        (site,),
    ).fetchone()
    return default if row is None else Deadlines(row["callback_days"], row["fix_days"])


def open_case(
    db: sqlite3.Connection,
    rating: PoorRating,
    source: str,
    zone: ZoneInfo,
    default: Deadlines,
    *,
    then: Callable[[int], object] | None = None,
    now: float | None = None,
) -> tuple[int, bool]:
    """The rating's case (its id, and whether it was made now). A case found again keeps
    what it has, but for the suspect flag, which InfluxDB's copy tells best. `then(id)` runs
    in the same transaction when the case is made (its notification: both or neither)."""
    now = time.time() if now is None else now
    pressed_s = None if rating.pressed_ms is None else rating.pressed_ms / 1000
    start = dt.datetime.fromtimestamp(pressed_s if pressed_s is not None else now, zone).date()
    rules = deadlines(db, rating.site, default)
    callback, fix = (
        workdays.after(start, rules.callback_days),
        workdays.after(start, rules.fix_days),
    )
    db.execute("BEGIN IMMEDIATE")
    try:
        made = db.execute(
            "INSERT OR IGNORE INTO poor_case (site, device, seq, pressed, counter, staff, score,"
            " reason, suspect, opened, source, callback_due, fix_due, calendar_known)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rating.site,
                rating.device,
                rating.seq,
                pressed_s,
                rating.counter,
                rating.staff,
                rating.score,
                rating.reason,
                int(rating.suspect),
                now,
                source,
                callback.due.isoformat(),
                fix.due.isoformat(),
                int(callback.known and fix.known),
            ),
        ).rowcount
        if not made and source == "reconcile":
            db.execute(
                "UPDATE poor_case SET suspect = ? WHERE site = ? AND device = ? AND seq = ?",
                (int(rating.suspect), rating.site, rating.device, rating.seq),
            )
        row = db.execute(
            "SELECT id FROM poor_case WHERE site = ? AND device = ? AND seq = ?",
            (rating.site, rating.device, rating.seq),
        ).fetchone()
        if made and then is not None:
            then(int(row["id"]))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return int(row["id"]), bool(made)


def advance(
    db: sqlite3.Connection,
    case_id: int,
    to: str,
    note: str,
    *,
    actor: str,
    now: float | None = None,
) -> None:
    """Take the case one step on, with a note; the step and the audit entry in one go."""
    note = checked_note(note, CaseError)
    if to not in STATES[1:]:
        raise CaseError(f"no step to {to!r}")
    now = time.time() if now is None else now
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT state FROM poor_case WHERE id = ?", (case_id,)).fetchone()
        if row is None:
            raise CaseError(f"no case {case_id}")
        state = row["state"]
        if STATES.index(to) != STATES.index(state) + 1:
            raise CaseError(
                f"a case {STATE_NAMES[state]} goes to {STATE_NAMES[STATES[-1]]}"
                if state == STATES[-1]
                else f"a case {STATE_NAMES[state]} goes next to "
                f"{STATE_NAMES[STATES[STATES.index(state) + 1]]}, not {STATE_NAMES[to]}"
            )
        db.execute("UPDATE poor_case SET state = ? WHERE id = ?", (to, case_id))
        db.execute(
            "INSERT INTO case_step (case_id, at, actor, state, note) VALUES (?, ?, ?, ?, ?)",
            (case_id, now, actor, to, note),
        )
        audit.record(
            db, actor, "case_step", f"case {case_id}",
            before={"state": state}, after={"state": to, "note": note}, at=now,
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def overdue(case: sqlite3.Row, today: dt.date) -> str | None:
    """What the case is late for ('callback' or 'fix'), or None."""
    state, day = case["state"], today.isoformat()
    if state == "open" and day > case["callback_due"]:
        return "callback"
    if state in ("open", "called_back") and day > case["fix_due"]:
        return "fix"
    return None


@dataclass(frozen=True)
class Filter:
    sites: tuple[str, ...] | None = None  # None: every hall
    staff: str | None = None
    state: str | None = None  # one of STATES, or "unclosed" (all but closed)
    month: str | None = None  # YYYY-MM of the press, in the hall's zone


def find(
    db: sqlite3.Connection, where: Filter, zone: ZoneInfo, limit: int = -1
) -> list[sqlite3.Row]:
    """The register's cases, newest first; at most `limit` (-1: all)."""
    sql: list[str] = ["SELECT * FROM poor_case WHERE 1"]
    args: list[str | float | int] = []
    if where.sites is not None:
        sql.append(f"AND site IN ({','.join('?' * len(where.sites))})")
        args += where.sites
    if where.staff:
        sql.append("AND staff = ?")
        args.append(where.staff)
    if where.state == "unclosed":
        sql.append("AND state != 'closed'")
    elif where.state:
        sql.append("AND state = ?")
        args.append(where.state)
    if where.month:
        first = dt.datetime.strptime(where.month, "%Y-%m").replace(tzinfo=zone)
        after = (first + dt.timedelta(days=32)).replace(day=1)
        sql.append("AND coalesce(pressed, opened) >= ? AND coalesce(pressed, opened) < ?")
        args += [first.timestamp(), after.timestamp()]
    sql.append("ORDER BY coalesce(pressed, opened) DESC, id DESC LIMIT ?")
    args.append(limit)
    return db.execute(" ".join(sql), args).fetchall()


def get(db: sqlite3.Connection, case_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM poor_case WHERE id = ?", (case_id,)
    ).fetchone()
    return row


def steps(db: sqlite3.Connection, case_id: int) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT * FROM case_step WHERE case_id = ? ORDER BY at, id", (case_id,)
    ).fetchall()


def open_counts(db: sqlite3.Connection, site: str, today: dt.date) -> tuple[int, int]:
    """(open cases, overdue cases) of a hall."""
    rows = db.execute(
        "SELECT * FROM poor_case WHERE site = ? AND state != 'closed'", (site,)
    ).fetchall()
    return len(rows), sum(overdue(row, today) is not None for row in rows)
