"""Alerts for the hall manager (the contract's `alert`, docs/contract.md): poor ratings, trends,
device trouble.

- `poor_rating`: each rating with score <= 2, once per (site, device, seq) while remembered;
- `trend`: at one counter, at least `trend_min` ratings in the last `trend_window_s` of press
  time, `trend_share` or more of them poor; raised once, and again only after it has cleared.
Alerts are at least once: after a restart, a replayed poor rating is alerted again, so a
notifier that must not repeat itself keys on (site, device, seq).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from collector.device import DeviceReport
from collector.rating import Rating
from firmware import contract

REMEMBERED = 100_000  # poor ratings remembered for de-duplication


@dataclass(frozen=True)
class TrendRule:
    window_s: int = 900
    minimum: int = 4
    share: float = 0.5


class _Window:
    """The ratings of one counter within window_ms of the newest press, kept in arrival order
    (which is press order but for stragglers), with a running count of the poor ones."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.newest = 0
        self.unhappy = 0
        self._items: deque[tuple[int, bool]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ts: int, poor: bool) -> None:
        self._items.append((ts, poor))
        self.unhappy += poor
        self.newest = max(self.newest, ts)
        while self._items and self._items[0][0] <= self.newest - self.window_ms:
            _, was_poor = self._items.popleft()
            self.unhappy -= was_poor


class AlertRules:
    def __init__(self, trend: TrendRule) -> None:
        self.trend = trend
        self._alerted: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._recent: dict[tuple[str, str], _Window] = {}
        self._firing: set[tuple[str, str]] = set()

    def on_rating(self, rating: Rating) -> list[dict[str, Any]]:
        """The alerts this stored rating raises."""
        if rating.score is None:
            return []
        found = []
        poor = rating.score <= contract.POOR_MAX
        key = (rating.site, rating.device, rating.seq)
        if key in self._alerted:
            return []  # a copy of one already seen: neither alerted nor counted again
        self._alerted[key] = None
        while len(self._alerted) > REMEMBERED:
            self._alerted.popitem(last=False)
        if poor:
            found.append(self._alert("poor_rating", rating))
        if rating.ts is not None and rating.counter is not None:
            trend = self._trend(rating, poor)
            if trend:
                found.append(trend)
        return found

    def _trend(self, rating: Rating, poor: bool) -> dict[str, Any] | None:
        assert rating.ts is not None
        where = (rating.site, str(rating.counter))
        recent = self._recent.get(where)
        if recent is None:
            recent = self._recent[where] = _Window(self.trend.window_s * 1000)
        recent.add(rating.ts, poor)
        unhappy = recent.unhappy
        hot = len(recent) >= self.trend.minimum and unhappy >= self.trend.share * len(recent)
        if not hot:
            self._firing.discard(where)
            return None
        if where in self._firing:
            return None
        self._firing.add(where)
        alert = self._alert("trend", rating)
        alert.update(ratings=len(recent), unhappy=unhappy, window_s=self.trend.window_s)
        return alert

    @staticmethod
    def _alert(kind: str, rating: Rating) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": kind,
            "site": rating.site,
            "device": rating.device,
            "counter": rating.counter,
            "staff": rating.staff,
            "score": rating.score,
            "reason": rating.reason,
            "ts": rating.ts,
            "seq": rating.seq,
        }


@dataclass(frozen=True)
class DeviceRule:
    offline_s: int = 300
    queue_min: int = 50


class DeviceAlerts:
    """`device` alerts, once each until cleared: `offline` for offline_s (state or last will),
    `stuck_key` while a key is reported stuck, `queue_growing` while the terminal's queue is at
    least queue_min and growing from one telemetry report to the next (cleared when it empties).
    """

    def __init__(self, rule: DeviceRule) -> None:
        self.rule = rule
        self._offline_since: dict[tuple[str, str], int] = {}
        self._queue: dict[tuple[str, str], int] = {}
        self._raised: set[tuple[str, str, str]] = set()

    def on_report(self, report: DeviceReport) -> list[dict[str, Any]]:
        site, device = report.where.site, report.where.device
        key = (site, device)
        now_ms = report.received_ns // 1_000_000
        found = []
        online = report.number("online")
        if online == 1:
            self._offline_since.pop(key, None)
            self._raised.discard((site, device, "offline"))
        elif online == 0:
            self._offline_since.setdefault(key, now_ms)
        stuck = report.number("stuck_keys")
        if stuck is not None:
            found += self._condition(key, "stuck_key", stuck > 0, now_ms, stuck_keys=stuck)
        queue = report.number("queue")
        if queue is not None:
            last = self._queue.get(key)
            self._queue[key] = queue
            growing = queue >= self.rule.queue_min and last is not None and queue > last
            if growing or queue == 0:
                found += self._condition(key, "queue_growing", growing, now_ms, queue=queue)
        return found

    def due(self, now_ms: int) -> list[dict[str, Any]]:
        """Offline alerts whose time has come."""
        found = []
        for (site, device), since in self._offline_since.items():
            if now_ms - since >= self.rule.offline_s * 1000:
                found += self._condition((site, device), "offline", True, now_ms, since=since)
        return found

    def _condition(
        self, key: tuple[str, str], problem: str, holds: bool, now_ms: int, **details: int
    ) -> list[dict[str, Any]]:
        raised = (*key, problem)
        if not holds:
            self._raised.discard(raised)
            return []
        if raised in self._raised:
            return []
        self._raised.add(raised)
        alert = {"v": 1, "kind": "device", "problem": problem, "site": key[0], "device": key[1]}
        return [{**alert, "at": now_ms, **details}]
