"""The running console: the web application, the hall link, and the threads behind them.

- alerts: a `poor_rating` alert opens its case at once (cases.py); every alert of the hall
  (poor rating, trend, terminal) goes to the notification outbox;
- the reconciliation, every `reconcile_s`: each poor rating InfluxDB holds from the last two
  days (and once an hour from the last RECONCILE_DEEP_DAYS, for a terminal that was offline
  for long) gets its case, so an alert lost anywhere still makes one; a case it makes is
  notified as its alert would have been;
- with it, the decisions InfluxDB has not taken yet (appeals.py), tried again;
- the notification outbox's sender (notify.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog

from collector.influx import InfluxError, InfluxHttp
from collector.known import KnownDevices
from console import appeals, cases, figures, notify, roster, sessions
from console.db import Connections
from console.link import HallLink
from console.settings import Settings
from console.web.core import Console

log = structlog.get_logger("console")

RECONCILE_RECENT_S = 2 * 86400
RECONCILE_DEEP_DAYS = 35
RECONCILE_DEEP_EVERY_S = 3600
NOTIFY_WITHIN_S = 86400  # a case the reconciliation makes for an older rating is not notified


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Connections(settings.db)
        self.defaults = cases.Deadlines(settings.callback_days, settings.fix_days)
        self.influx = InfluxHttp(settings.influx_url, settings.influx_db, settings.influx_token)
        self.link = HallLink(settings, self.on_alert, self.on_config)
        known = KnownDevices(settings.known_devices) if settings.known_devices else None
        self.console = Console(settings, self.db, self.link, self.influx, known)
        self.sender = notify.Sender(settings)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deep_at = 0.0

    def on_alert(self, site: str, alert: dict[str, Any]) -> None:
        """An alert from the collector: a poor rating's case and its notification, made
        together once; a trend's or a terminal's notification."""
        db = self.db.get()
        rating = cases.from_alert(site, alert)  # its own site, if it says one, must be the topic's
        alert = {**alert, "site": site}
        if isinstance(rating, cases.PoorRating):
            case_id, made = cases.open_case(
                db, rating, "alert", self.settings.zone, self.defaults,
                then=partial(self._notify_case, db, alert, time.time()),
            )  # fmt: skip
            if made:
                log.info("case_opened", case=case_id, site=site, source="alert")
        elif alert.get("kind") == "poor_rating":
            log.warning("alert_ignored", site=site, reason=rating)
            self.link.rejected["alert"] += 1
        else:
            self._notify(db, alert, f"/hall/{site}", time.time())

    def _notify_case(
        self, db: sqlite3.Connection, alert: dict[str, Any], now: float, case: int
    ) -> int:
        return self._notify(db, alert, f"/cases/{case}", now)

    def _notify(self, db: sqlite3.Connection, alert: dict[str, Any], path: str, now: float) -> int:
        link = f"{self.settings.public_url}{path}"
        return notify.enqueue(db, alert, link, now, zone=self.settings.zone)

    def on_config(self, site: str, device: str, config: dict[str, Any]) -> None:
        """A terminal's retained config, whoever set it: kept in the history of who sat where
        (the console's own logins are kept already, under who made them)."""
        staff = config.get("staff")
        counter = config.get("counter")
        if staff is not None and not isinstance(staff, str):
            return
        roster.record_seating(
            self.db.get(), site, device,
            counter if isinstance(counter, str) else None, staff, actor=roster.SEEN,
        )  # fmt: skip

    def reconcile(self, now: float | None = None) -> int:
        """Cases for the poor ratings InfluxDB holds and no case has; how many were made."""
        now = time.time() if now is None else now
        deep = now - self._deep_at >= RECONCILE_DEEP_EVERY_S
        since = now - (RECONCILE_DEEP_DAYS * 86400 if deep else RECONCILE_RECENT_S)
        found = figures.poor_ratings(self.influx, int(since * 1e9), int(now * 1e9) + 10**12)
        made = 0
        db = self.db.get()
        for poor in found:
            rating = cases.PoorRating(
                poor.site, poor.device, poor.seq,
                None if poor.undated else poor.time_ns // 10**6,
                poor.counter, poor.staff, poor.score, poor.reason, poor.suspect,
            )  # fmt: skip
            recent = rating.pressed_ms is None or rating.pressed_ms / 1000 > now - NOTIFY_WITHIN_S
            alert = {"v": 1, "kind": "poor_rating", **_alert_fields(rating)}
            notified = partial(self._notify_case, db, alert, now) if recent else None
            case_id, new = cases.open_case(
                db, rating, "reconcile", self.settings.zone, self.defaults, then=notified
            )
            if new:
                made += 1
                log.warning("case_opened", case=case_id, site=poor.site, source="reconcile")
        if deep:
            self._deep_at = now
        return made

    def start(self) -> Callable[[], None]:
        """Start the link and the threads; the function that stops them."""
        self.link.start()
        self.sender.start()
        self._spawn("reconcile", self._reconcile_loop)
        return self.stop

    def _spawn(self, name: str, loop: Callable[[], None]) -> None:
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _reconcile_loop(self) -> None:
        """Each round's three jobs, each tried whatever became of the one before."""
        jobs: tuple[tuple[str, Callable[[], int]], ...] = (
            ("reconcile", self.reconcile),
            ("deliver_decisions", lambda: appeals.deliver_pending(self.db.get(), self.influx)),
            ("sweep_sessions", lambda: sessions.sweep(self.db.get(), self.settings.session_s)),
        )
        while not self._stop.is_set():
            for name, job in jobs:
                try:
                    log.debug(name, done=job())
                except (InfluxError, OSError) as e:
                    log.warning(f"{name}_failed", error=str(e))
                except Exception:
                    log.exception(f"{name}_failed")
            self._stop.wait(self.settings.reconcile_s)

    def stop(self) -> None:
        self._stop.set()
        self.sender.stop()
        self.link.stop()
        for thread in self._threads:
            thread.join(5)


def _alert_fields(rating: cases.PoorRating) -> dict[str, Any]:
    return {
        "site": rating.site,
        "device": rating.device,
        "seq": rating.seq,
        "ts": rating.pressed_ms,
        "counter": rating.counter,
        "staff": rating.staff,
        "score": rating.score,
        "reason": rating.reason,
    }
