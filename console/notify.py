"""Notifications of the collector's alerts to the hall's duty manager (带班) of the day, through
the hall's channels (`channel`: WeCom, DingTalk or Feishu group robots, e-mail), from a
durable outbox (`outbox`).

`enqueue` writes one outbox row per channel of the alert's hall, in one transaction (the
caller's, when it has one open, so that a case and its notifications are written together).
Each row's `key` is what it is about and where it goes, UNIQUE, inserted OR IGNOREd, so an
alert that comes again enqueues nothing:
- `poor_rating/{site}/{device}/{seq}/{channel}`: the rating's identity, so the collector's
  at-least-once alerts, the reconciliation with InfluxDB and a terminal's resend with the
  same seq make one message each;
- `trend/{site}/{device}/{seq}/{channel}`: the rating that tipped the counter's trend (the
  collector raises it once until it clears, so a new episode is a new rating);
- `device/{site}/{device}/{problem}/{at}/{channel}`: the alert itself (its detection time),
  so a copy of one alert is one message, and a terminal that goes offline again, or is still
  offline when a restarted collector looks again, is a new one.
The text (Chinese: hall, counter, clerk's 工号, score, reason, the time in the halls' zone,
the duty manager's name) and the recipient (the duty manager's e-mail for an e-mail channel,
else the channel's own address; their mobile for a robot's @) are fixed at enqueue: the
message says who was on duty when it happened, whoever is on duty when it finally goes.

A `Sender` sends every due row (`sent IS NULL AND next_try <= now`): it first takes a lease
on the row (next_try moved LEASE_S ahead, so a second console on the same file skips it),
then sends, then marks it sent in its own transaction. A failure (unreachable, a timeout, a
vendor's non-zero code, a wrong signature) counts an attempt, keeps the reason in
`last_error` and tries again after 10 s, doubling each time up to 15 min: a message is
never dropped. The one window for a repeat is a crash between the vendor's answer and that
commit, a few milliseconds; an e-mail then carries the same Message-ID.

Nothing here logs or audits a webhook URL (it holds the robot's key) or a secret.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import structlog

from console import audit, duty, robots
from console import db as console_db
from console.settings import Settings
from dashboards.appraisal import REASON_NAMES
from firmware import contract

log = structlog.get_logger("console")

KINDS = ("wecom", "dingtalk", "feishu", "email")
CHINA = ZoneInfo("Asia/Shanghai")  # the halls' zone unless the caller says (settings.zone)
PERIOD_S = 1.0
BATCH = 50  # rows a round at most: a long backlog goes a second at a time
LEASE_S = 300.0  # longer than any one send's timeouts
BACKOFF_FIRST_S = 10.0
BACKOFF_MAX_S = 15 * 60.0
SECRET_MAX = 256
PROBLEMS = {"offline": "离线", "stuck_key": "按键卡住", "queue_growing": "评价积压未发出"}
# each robot's webhook, as its vendor issues it: the path, and the query's key when it has one
WEBHOOKS = {
    "wecom": ("/cgi-bin/webhook/send", "key"),
    "dingtalk": ("/robot/send", "access_token"),
    "feishu": ("/open-apis/bot/v2/hook/", None),
}
VENDOR_HOSTS = {  # where each vendor's robots live (netloc: no port, no user)
    "wecom": ("qyapi.weixin.qq.com",),
    "dingtalk": ("oapi.dingtalk.com",),
    "feishu": ("open.feishu.cn", "open.larksuite.com"),
}
FEISHU_HOOK = re.compile(r"/open-apis/bot/v2/hook/[A-Za-z0-9-]{1,64}")


class ChannelError(ValueError):
    """A channel the console cannot take."""


@dataclass(frozen=True)
class Channel:
    id: int
    site: str
    kind: str
    where: str  # a robot's host (its URL holds its key, never shown), or an e-mail address
    signed: bool


@dataclass(frozen=True)
class Waiting:
    """A message not sent yet, for a page that shows what is stuck and why."""

    id: int
    kind: str
    subject: str
    created: float
    attempts: int
    next_try: float
    last_error: str | None


# --- the hall's channels ---


def add_channel(
    db: sqlite3.Connection,
    site: str,
    kind: str,
    target: str,
    secret: str = "",
    *,
    actor: str,
    relays: tuple[str, ...] = (),
    now: float | None = None,
) -> int:
    """A new channel for the hall: a robot's webhook URL and signing secret, or for e-mail an
    address used when the duty manager has none (empty: the duty manager's only)."""
    if not contract.valid_name("site", site):
        raise ChannelError(f"not a hall's site name: {site!r}")
    if kind not in KINDS:
        raise ChannelError(f"a channel is one of {', '.join(KINDS)}, not {kind!r}")
    _check_channel(kind, target, secret, relays)
    db.execute("BEGIN IMMEDIATE")
    try:
        cursor = db.execute(
            "INSERT INTO channel (site, kind, target, secret) VALUES (?, ?, ?, ?)",
            (site, kind, target, secret),
        )
        channel_id = int(cursor.lastrowid or 0)
        shown = _shown(kind, target, secret)
        audit.record(db, actor, "add_channel", f"{site} #{channel_id}", after=shown, at=now)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return channel_id


def remove_channel(
    db: sqlite3.Connection, channel_id: int, *, actor: str, now: float | None = None
) -> None:
    """The channel gone, with its messages not sent yet (they had nowhere else to go)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT * FROM channel WHERE id = ?", (channel_id,)).fetchone()
        if row is None:
            raise ChannelError(f"there is no channel #{channel_id}")
        db.execute("DELETE FROM channel WHERE id = ?", (channel_id,))
        shown = _shown(row["kind"], row["target"], row["secret"])
        audit.record(
            db, actor, "remove_channel", f"{row['site']} #{channel_id}", before=shown, at=now
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def change_channel(
    db: sqlite3.Connection,
    channel_id: int,
    *,
    target: str | None = None,
    secret: str | None = None,
    actor: str,
    relays: tuple[str, ...] = (),
    now: float | None = None,
) -> None:
    """A channel's webhook (or address) or secret replaced (None: kept): a robot whose key or
    secret was wrong, or was changed at the vendor, takes the messages waiting for it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT * FROM channel WHERE id = ?", (channel_id,)).fetchone()
        if row is None:
            raise ChannelError(f"there is no channel #{channel_id}")
        kind = row["kind"]
        target = row["target"] if target is None else target
        secret = row["secret"] if secret is None else secret
        _check_channel(kind, target, secret, relays)
        db.execute(
            "UPDATE channel SET target = ?, secret = ? WHERE id = ?", (target, secret, channel_id)
        )
        audit.record(
            db,
            actor,
            "change_channel",
            f"{row['site']} #{channel_id}",
            before=_shown(kind, row["target"], row["secret"]),
            after=_shown(kind, target, secret),
            at=now,
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def channels(db: sqlite3.Connection, site: str) -> list[Channel]:
    rows = db.execute("SELECT * FROM channel WHERE site = ? ORDER BY id", (site,))
    return [
        Channel(r["id"], r["site"], r["kind"], _where(r["kind"], r["target"]), bool(r["secret"]))
        for r in rows
    ]


def waiting(db: sqlite3.Connection, site: str) -> list[Waiting]:
    """The hall's messages not sent yet, oldest first."""
    rows = db.execute(
        "SELECT o.*, c.kind FROM outbox o JOIN channel c ON c.id = o.channel"
        " WHERE c.site = ? AND o.sent IS NULL ORDER BY o.created, o.id",
        (site,),
    )
    return [
        Waiting(
            r["id"],
            r["kind"],
            r["subject"],
            r["created"],
            r["attempts"],
            r["next_try"],
            r["last_error"],
        )
        for r in rows
    ]


def _check_channel(kind: str, target: str, secret: str, relays: tuple[str, ...]) -> None:
    if kind == "email":
        if target and not duty.plausible_email(target):
            raise ChannelError("not an e-mail address")
        if secret:
            raise ChannelError("an e-mail channel has no secret")
    else:
        _check_webhook(kind, target, relays)
        if kind == "wecom" and secret:
            raise ChannelError("a WeCom robot is not signed: its key is in its webhook")
    if len(secret) > SECRET_MAX or not secret.isprintable() or secret != secret.strip():
        raise ChannelError(f"a secret is at most {SECRET_MAX} printable characters")


def _shown(kind: str, target: str, secret: str) -> dict[str, Any]:
    """A channel as the audit trail keeps it: never its key or secret."""
    return {"kind": kind, "where": _where(kind, target), "signed": bool(secret)}


def _check_webhook(kind: str, url: str, relays: tuple[str, ...]) -> None:
    """The URL its vendor issues: HTTPS to the vendor's own host, exactly the vendor's path
    and its key; or a `relays` host:port the console's settings name (a hall's own relay, a
    test's receiver), over HTTP or HTTPS. Anything else could make the console reach, with
    each alert, a service a hall manager must not (InfluxDB on loopback): refused."""
    if not url.isprintable() or " " in url:
        raise ChannelError("a webhook URL has no spaces or control characters")
    parts = urlsplit(url)
    path, key = WEBHOOKS[kind]
    vendor = parts.scheme == "https" and parts.netloc in VENDOR_HOSTS[kind]
    relay = parts.scheme in ("http", "https") and parts.netloc in relays
    exact = parts.path == path if key else bool(FEISHU_HOOK.fullmatch(parts.path))
    keyed = not key or (
        set(parse_qs(parts.query)) == {key} and len(parse_qs(parts.query)[key]) == 1
    )
    if not ((vendor or relay) and exact and keyed and not parts.fragment):
        shape = f"https://{VENDOR_HOSTS[kind][0]}{path}" + (f"?{key}=..." if key else "...")
        raise ChannelError(f"a {kind} robot's webhook is {shape}")


def _where(kind: str, target: str) -> str:
    return target if kind == "email" else urlsplit(target).netloc.rpartition("@")[2]


# --- enqueueing an alert ---


def enqueue(
    db: sqlite3.Connection,
    alert: dict[str, Any],
    link: str,
    now: float,
    *,
    zone: dt.tzinfo = CHINA,
) -> int:
    """One outbox row per channel of the alert's hall, linking to `link` (the case's page for
    a poor rating, the hall's today page otherwise); the number of rows new (0: the alert
    came before, the hall has no channels, or the alert is not one to notify, logged)."""
    if not link.startswith(("https://", "http://")) or not link.isprintable() or " " in link:
        raise ValueError(f"a notification links to a web page, not {link[:80]!r}")
    about = _about(alert)
    if about is None:
        return 0
    site = alert["site"]
    person = duty.on_duty(db, site, dt.datetime.fromtimestamp(now, zone).date())
    subject, body = _compose(db, alert, person, zone)
    rows = []
    for channel in db.execute("SELECT id, kind, target FROM channel WHERE site = ?", (site,)):
        if channel["kind"] == "email":
            recipient = (person.email if person else "") or channel["target"]
            if not recipient:
                log.warning("notification_unaddressed", site=site, channel=channel["id"])
                continue
        else:
            recipient = person.mobile if person else ""
        key = f"{about}/{channel['id']}"
        rows.append((key, channel["id"], subject, body, link, recipient, now, now))
    own = not db.in_transaction
    if own:
        db.execute("BEGIN IMMEDIATE")
    try:
        added = sum(
            db.execute(
                "INSERT OR IGNORE INTO outbox (key, channel, subject, body, link, recipient,"
                " created, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            ).rowcount
            for row in rows
        )
        if own:
            db.execute("COMMIT")
    except BaseException:
        if own:
            db.execute("ROLLBACK")
        raise
    return added


def _about(alert: dict[str, Any]) -> str | None:
    """What the alert is about, as its outbox keys begin; None (logged): not one to notify."""
    kind, site, device = alert.get("kind"), alert.get("site"), alert.get("device")
    if not contract.valid_name("site", site) or not contract.valid_name("device", device):
        reason = "no hall or terminal"
    elif kind in ("poor_rating", "trend"):
        seq = alert.get("seq")
        if _whole(seq) and _whole(alert.get("score")):
            return f"{kind}/{site}/{device}/{seq}"
        reason = "no seq or score"
    elif kind == "device":
        problem, at = alert.get("problem"), alert.get("at")
        if problem in PROBLEMS and _whole(at):
            return f"device/{site}/{device}/{problem}/{at}"
        reason = "an unknown problem, or no time"
    else:
        reason = "an unknown kind"
    log.warning("alert_not_notified", kind=str(kind)[:40], reason=reason)
    return None


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _compose(
    db: sqlite3.Connection, alert: dict[str, Any], person: duty.DutyPerson | None, zone: dt.tzinfo
) -> tuple[str, str]:
    """The subject and the body, a fact a line."""
    site = alert["site"]
    row = db.execute("SELECT name FROM hall WHERE site = ?", (site,)).fetchone()
    hall = (row["name"] if row else "") or site
    counter = alert.get("counter")
    if alert["kind"] == "device":  # its alert names no counter: the one it stands at
        seated = db.execute(
            "SELECT counter FROM counter WHERE site = ? AND device = ?", (site, alert["device"])
        ).fetchone()
        counter = seated["counter"] if seated else None
    window = f"{counter} 号窗口" if contract.valid_name("counter", counter) else "未知窗口"
    if alert["kind"] == "device":
        headline, facts = _device_facts(alert, zone)
    else:
        headline, facts = _rating_facts(alert, zone)
    duty_name = person.name if person else "未排班"
    lines = [f"营业厅：{hall}", f"窗口：{window}", *facts, f"带班：{duty_name}"]
    return f"{hall}：{window}{headline}", "\n".join(lines)


def _device_facts(alert: dict[str, Any], zone: dt.tzinfo) -> tuple[str, list[str]]:
    problem = PROBLEMS[alert["problem"]]
    facts = [f"终端：{alert['device']}", f"情况：{problem}"]
    if _whole(since := alert.get("since")):
        facts.append(f"离线起于：{_when(since, zone)}")
    if _whole(stuck := alert.get("stuck_keys")):
        facts.append(f"卡住的按键：{stuck} 个")
    if _whole(waiting := alert.get("queue")):
        facts.append(f"待发评价：{waiting} 条")
    facts.append(f"发现时间：{_when(alert['at'], zone)}")
    return f"的评价终端{problem}", facts


def _rating_facts(alert: dict[str, Any], zone: dt.tzinfo) -> tuple[str, list[str]]:
    staff = alert.get("staff")
    facts = [f"营业员工号：{staff if contract.valid_name('staff', staff) else '无人登录'}"]
    if alert["kind"] == "poor_rating":
        reason = alert.get("reason")
        named = REASON_NAMES.get(reason, "未选择") if isinstance(reason, str) else "未选择"
        facts += [f"评分：{alert['score']} 分", f"原因：{named}"]
        headline = f"收到差评（{alert['score']} 分）"
    else:
        window_s, ratings, unhappy = (alert.get(k) for k in ("window_s", "ratings", "unhappy"))
        if _whole(window_s) and _whole(ratings) and _whole(unhappy):
            facts.append(f"近 {window_s // 60} 分钟 {ratings} 个评价中 {unhappy} 个不满意")
        headline = "不满意评价集中"
    ts = alert.get("ts")
    facts.append(f"评价时间：{_when(ts, zone) if _whole(ts) else '未知'}")
    return headline, facts


def _when(ms: int, zone: dt.tzinfo) -> str:
    try:
        return dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a clock far off: the fact, not the error
        return "未知"


# --- sending ---


class Sender:
    """Sends the outbox: `run_once(now)` for one round, `start()` for a round every second,
    `stop()` to end. Its SQLite connection (console.db.connect) belongs to its own thread, as
    SQLite's connections belong to the thread that opened them: every round runs there,
    whoever asked for it, so rounds never overlap."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._calls: queue.Queue[tuple[float, Future[int]] | None] = queue.Queue()
        self._ticking = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(opened,), name="svc-console-notify", daemon=True
        )
        self._thread.start()
        opened.result()  # a database it cannot open raises here, in the caller

    def run_once(self, now: float) -> int:
        """Send every row due at `now`; the number sent."""
        done: Future[int] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the sender is stopped")
            self._calls.put((now, done))
        return done.result()

    def start(self) -> None:
        """A round every PERIOD_S from now on, at the clock's time."""
        self._ticking.set()

    def stop(self) -> None:
        """No more rounds; the one under way finishes first. The connection is closed."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._calls.put(None)
        self._thread.join()

    def _serve(self, opened: Future[None]) -> None:
        try:
            db = console_db.connect(self._settings.db)
        except BaseException as e:
            opened.set_exception(e)
            return
        opened.set_result(None)
        next_tick = time.monotonic()
        try:
            while True:
                try:
                    call = self._calls.get(timeout=max(0.0, next_tick - time.monotonic()))
                except queue.Empty:
                    pass
                else:
                    if call is None:
                        return
                    now, done = call
                    try:
                        done.set_result(self._round(db, now))
                    except Exception as e:
                        done.set_exception(e)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + PERIOD_S
                    if self._ticking.is_set():
                        self._tick(db)
        finally:
            db.close()

    def _tick(self, db: sqlite3.Connection) -> None:
        try:
            self._round(db, time.time())
        except Exception as e:  # a locked database, a full disk: the next round tries again
            log.error("notification_round_failed", error=f"{type(e).__name__}: {e}"[:300])

    def _round(self, db: sqlite3.Connection, now: float) -> int:
        due = db.execute(
            "SELECT o.*, c.site, c.kind, c.target, c.secret FROM outbox o"
            " JOIN channel c ON c.id = o.channel"
            " WHERE o.sent IS NULL AND o.next_try <= ? ORDER BY o.next_try, o.id LIMIT ?",
            (now, BATCH),
        ).fetchall()
        sent = 0
        for row in due:
            leased = db.execute(
                "UPDATE outbox SET next_try = ? WHERE id = ? AND sent IS NULL AND next_try <= ?",
                (now + LEASE_S, row["id"], now),
            ).rowcount
            if not leased:
                continue  # another sender took it
            attempts = row["attempts"] + 1
            try:
                self._deliver(row)
            except Exception as e:
                error = str(e) if isinstance(e, robots.SendError) else type(e).__name__
                delay = min(BACKOFF_FIRST_S * 2 ** min(attempts - 1, 20), BACKOFF_MAX_S)
                db.execute(
                    "UPDATE outbox SET attempts = ?, last_error = ?, next_try = ? WHERE id = ?",
                    (attempts, error, now + delay, row["id"]),
                )
                log.warning(
                    "notification_failed",
                    id=row["id"],
                    site=row["site"],
                    kind=row["kind"],
                    attempts=attempts,
                    error=error,
                    retry_in_s=delay,
                )
                continue
            _mark_sent(db, row["id"], now, attempts)
            log.info(
                "notification_sent",
                id=row["id"],
                site=row["site"],
                kind=row["kind"],
                attempts=attempts,
            )
            sent += 1
        return sent

    def _deliver(self, row: sqlite3.Row) -> None:
        kind, target, secret = row["kind"], row["target"], row["secret"]
        mobile = "" if kind == "email" else row["recipient"]
        message = robots.Message(row["subject"], row["body"], row["link"], mobile)
        if kind == "wecom":
            robots.send_wecom(target, message)
        elif kind == "dingtalk":
            robots.send_dingtalk(target, secret, message)
        elif kind == "feishu":
            robots.send_feishu(target, secret, message)
        else:
            settings = self._settings
            if settings.smtp is None:
                raise robots.SendError("e-mail: no SMTP server set (SVC_CONSOLE_SMTP_URL)")
            domain = settings.smtp_from.rpartition("@")[2] or "svc-console"
            robots.send_email(
                settings.smtp,
                settings.smtp_from,
                row["recipient"],
                message,
                ca_file=settings.smtp_ca_file,
                message_id=f"<svc-console.{row['id']}.{int(row['created'])}@{domain}>",
            )


def _mark_sent(db: sqlite3.Connection, outbox_id: int, now: float, attempts: int) -> None:
    """The row sent, as soon as the vendor said so: a database busy beyond SQLite's own wait
    is waited for longer (until the lease runs out the message would go again)."""
    deadline = time.monotonic() + LEASE_S / 2
    while True:
        try:
            db.execute(
                "UPDATE outbox SET sent = ?, attempts = ?, last_error = NULL WHERE id = ?",
                (now, attempts, outbox_id),
            )
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
