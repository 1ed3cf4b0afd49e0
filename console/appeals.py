"""Appeals (申诉) and the review of suspect ratings: the console's record of each decision, and
its delivery to InfluxDB (reviews.py writes it onto the rating's point).

A manager files an appeal on a rating of their hall; appraisal staff uphold or reject it. A
manager confirms or clears a rating the collector flagged suspect. Each decision is kept here
first, in one transaction with its audit entry and, when InfluxDB must change, a row of
`influx_pending`; then it is written to InfluxDB at once, and the pending row goes. A decision
InfluxDB could not take then (an outage, or a rating not stored yet: still queued on its
terminal) stays pending and `deliver_pending` tries it again every minute: no decision is
lost, and writing one twice writes the same fields.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass

import structlog

from collector.influx import InfluxError, InfluxHttp
from console import audit, cases, reviews

log = structlog.get_logger("console")
_delivering = threading.Lock()

GROUND_NAMES = {
    "mistaken": "误评",
    "malicious": "恶意差评",
    "device_fault": "设备故障",
    "other": "其他",
}
DECISION_NAMES = {"pending": "待裁定", "upheld": "申诉成立", "rejected": "申诉驳回"}
VERDICT_NAMES = {"confirmed": "确认可疑", "cleared": "撤销可疑"}
NOTE_MAX = cases.NOTE_MAX


class AppealError(ValueError):
    """An appeal or verdict the console cannot take."""


@dataclass(frozen=True)
class Rating:
    site: str
    device: str
    seq: int


def file(
    db: sqlite3.Connection,
    rating: Rating,
    staff: str | None,
    ground: str,
    note: str,
    *,
    actor: str,
    now: float | None = None,
) -> int:
    """A manager's appeal on a rating; one appeal a rating."""
    if ground not in reviews.GROUNDS:
        raise AppealError("申诉理由只能是误评、恶意差评、设备故障或其他。")
    note = cases.checked_note(note, AppealError)
    now = time.time() if now is None else now
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute(
            "SELECT 1 FROM appeal WHERE site = ? AND device = ? AND seq = ?",
            (rating.site, rating.device, rating.seq),
        ).fetchone():
            raise AppealError("这个评价已经申诉过。")
        appeal_id = db.execute(
            "INSERT INTO appeal (site, device, seq, staff, ground, note, filed_by, filed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rating.site, rating.device, rating.seq, staff, ground, note, actor, now),
        ).lastrowid
        audit.record(
            db, actor, "file_appeal", _subject(rating),
            after={"appeal": appeal_id, "staff": staff, "ground": ground, "note": note}, at=now,
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return int(appeal_id or 0)


def decide(
    db: sqlite3.Connection,
    influx: InfluxHttp,
    appeal_id: int,
    upheld: bool,
    note: str,
    *,
    actor: str,
    now: float | None = None,
) -> bool:
    """The appraisal's decision on an appeal; whether InfluxDB took it already (an upheld
    one; a rejection changes nothing there). Decided once: a decision is not taken back."""
    note = cases.checked_note(note, AppealError)
    now = time.time() if now is None else now
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT * FROM appeal WHERE id = ?", (appeal_id,)).fetchone()
        if row is None:
            raise AppealError("没有这个申诉。")
        if row["decision"] != "pending":
            raise AppealError(f"这个申诉已裁定：{DECISION_NAMES[row['decision']]}。")
        decision = "upheld" if upheld else "rejected"
        db.execute(
            "UPDATE appeal SET decision = ?, decided_by = ?, decided_at = ?, decision_note = ?"
            " WHERE id = ?",
            (decision, actor, now, note, appeal_id),
        )
        rating = Rating(row["site"], row["device"], row["seq"])
        if upheld:
            _pend(db, rating, now)
        audit.record(
            db, actor, "decide_appeal", _subject(rating),
            before={"decision": "pending"},
            after={"appeal": appeal_id, "decision": decision, "note": note}, at=now,
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return _deliver(db, influx, rating) if upheld else True


def review_suspect(
    db: sqlite3.Connection,
    influx: InfluxHttp,
    rating: Rating,
    verdict: str,
    *,
    actor: str,
    now: float | None = None,
) -> bool:
    """A manager's verdict on a suspect rating; whether InfluxDB took it already.
    reviews.ReviewRefused (nothing kept) for a rating an upheld appeal excluded, or one the
    collector never flagged, when InfluxDB can tell at once."""
    if verdict not in VERDICT_NAMES:
        raise AppealError("只能确认或撤销可疑。")
    now = time.time() if now is None else now
    if _upheld(db, rating):
        raise reviews.ReviewRefused("申诉已成立，这个评价不计入考核，无需再审可疑。")
    points = reviews.find_points(influx, rating.site, rating.device, rating.seq)
    if not points:  # a verdict is on a rating the collector flagged: one stored already
        raise AppealError("这个评价尚未入库，不能审核可疑。")
    reviews.check_verdict(points, (rating.site, rating.device, rating.seq))
    db.execute("BEGIN IMMEDIATE")
    try:
        old = db.execute(
            "SELECT verdict FROM suspect_review WHERE site = ? AND device = ? AND seq = ?",
            (rating.site, rating.device, rating.seq),
        ).fetchone()
        db.execute(
            "INSERT INTO suspect_review (site, device, seq, verdict, by, at) VALUES"
            " (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, seq) DO UPDATE SET"
            " verdict = excluded.verdict, by = excluded.by, at = excluded.at",
            (rating.site, rating.device, rating.seq, verdict, actor, now),
        )
        _pend(db, rating, now)
        audit.record(
            db, actor, "review_suspect", _subject(rating),
            before=None if old is None else {"verdict": old["verdict"]},
            after={"verdict": verdict}, at=now,
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return _deliver(db, influx, rating)


def deliver_pending(db: sqlite3.Connection, influx: InfluxHttp) -> int:
    """Try every decision InfluxDB has not taken yet; how many it took now."""
    rows = db.execute("SELECT site, device, seq FROM influx_pending ORDER BY since").fetchall()
    return sum(_deliver(db, influx, Rating(r["site"], r["device"], r["seq"])) for r in rows)


def pending(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM influx_pending").fetchone()[0])


def _pend(db: sqlite3.Connection, rating: Rating, now: float) -> None:
    """The rating's decision waits for InfluxDB; a newer decision stamps its row anew, so a
    delivery of the older one in flight does not take the row away (_deliver)."""
    db.execute(
        "INSERT INTO influx_pending (site, device, seq, since) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (site, device, seq) DO UPDATE SET since = max(since + 1e-6, excluded.since)",
        (rating.site, rating.device, rating.seq, now),
    )


def _upheld(db: sqlite3.Connection, rating: Rating) -> bool:
    return bool(
        db.execute(
            "SELECT 1 FROM appeal WHERE site = ? AND device = ? AND seq = ?"
            " AND decision = 'upheld'",
            (rating.site, rating.device, rating.seq),
        ).fetchone()
    )


def _deliver(db: sqlite3.Connection, influx: InfluxHttp, rating: Rating) -> bool:
    """Write the rating's standing decision to InfluxDB: an upheld appeal wins over any
    verdict. One delivery at a time (a page's and the minute's round could otherwise write
    an older decision last); its pending row goes only if no newer decision stamped it."""
    with _delivering:
        key = (rating.site, rating.device, rating.seq)
        pending = db.execute(
            "SELECT since FROM influx_pending WHERE site = ? AND device = ? AND seq = ?", key
        ).fetchone()
        try:
            stored = _write(db, influx, key)
        except (InfluxError, OSError) as e:
            log.warning("decision_pending", rating=_subject(rating), error=str(e))
            return False
        except reviews.ReviewRefused as e:  # InfluxDB's point says no (an exclusion won)
            log.warning("decision_refused", rating=_subject(rating), error=str(e))
            stored = True
        if stored and pending is not None:
            db.execute(
                "DELETE FROM influx_pending WHERE site = ? AND device = ? AND seq = ?"
                " AND since = ?",
                (*key, pending["since"]),
            )
        return stored


def _write(db: sqlite3.Connection, influx: InfluxHttp, key: tuple[str, str, int]) -> bool:
    appeal = db.execute(
        "SELECT ground, decided_by FROM appeal WHERE site = ? AND device = ? AND seq = ?"
        " AND decision = 'upheld'",
        key,
    ).fetchone()
    if appeal is not None:
        return reviews.uphold_appeal(
            influx, *key, ground=appeal["ground"], user=appeal["decided_by"]
        )
    verdict = db.execute(
        "SELECT verdict, by FROM suspect_review WHERE site = ? AND device = ? AND seq = ?", key
    ).fetchone()
    if verdict is None:
        return True  # nothing stands: nothing to write
    write = reviews.clear_suspect if verdict["verdict"] == "cleared" else reviews.confirm_suspect
    return write(influx, *key, user=verdict["by"])


def _subject(rating: Rating) -> str:
    return f"{rating.site}/{rating.device}#{rating.seq}"
