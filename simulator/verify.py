"""svc-sim verify: InfluxDB against the ground truth, rating by rating.

For every device in the truth file, each rating must be stored exactly once, as sent: its
(site, device, seq) once, with the time the contract (docs/contract.md) derives from ts and
seq, and the same score, reason, counter, staff, mode, wait_ms and aspects. Anything else is
a difference:
- lost: a rating of the truth that InfluxDB does not hold;
- doubled: a rating InfluxDB holds more than once (two points with one seq);
- wrong: a rating held once but with a field or the time not as sent;
- unexpected: a point of one of those devices that the truth does not know.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.influx import InfluxError, InfluxHttp
from firmware import contract
from simulator.truth import read

COMPARED = ("score", "reason", "counter", "staff", "mode", "wait_ms")


@dataclass
class DeviceVerdict:
    """One terminal's ratings held against the truth (the collector's DeviceReport is what a
    terminal reports of itself)."""

    site: str
    device: str
    expected: int = 0
    lost: list[int] = field(default_factory=list)
    doubled: list[int] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return len(self.lost) + len(self.doubled) + len(self.wrong) + len(self.unexpected)


def verify(truth_path: Path, influx: InfluxHttp) -> list[DeviceVerdict]:
    truth: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for rating in read(truth_path):
        truth[(rating["site"], rating["device"])][rating["seq"]] = rating
    reports = []
    for site in sorted({site for site, _ in truth}):
        held = _held(influx, site)
        for (s, device), sent in sorted(truth.items()):
            if s == site:
                reports.append(_compare(site, device, sent, held.get(device, {})))
    return reports


def settled(truth_path: Path, influx: InfluxHttp, timeout_s: float) -> list[DeviceVerdict]:
    """The reports once there are no differences, or when timeout_s has passed: the
    collector may still be storing the last ratings when a run ends."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reports = verify(truth_path, influx)
        except InfluxError:
            reports = None
        if reports is not None and not sum(r.differences for r in reports):
            return reports
        if time.monotonic() > deadline:
            return reports if reports is not None else verify(truth_path, influx)
        time.sleep(0.5)


def _held(influx: InfluxHttp, site: str) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """Every rating point of one site: by device, by seq, the points (normally one)."""
    columns = ", ".join(f'"{c}"' for c in ("seq", "device", *COMPARED, *contract.ASPECTS))
    rows = influx.query(f"SELECT {columns} FROM rating WHERE \"site\" = '{site}'")
    held: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        held[row["device"]][int(row["seq"])].append(row)
    return held


def _compare(
    site: str, device: str, sent: dict[int, dict[str, Any]], held: dict[int, list[dict[str, Any]]]
) -> DeviceVerdict:
    report = DeviceVerdict(site, device, expected=len(sent))
    for seq, rating in sorted(sent.items()):
        points = held.get(seq, [])
        if not points:
            report.lost.append(seq)
        elif len(points) > 1:
            report.doubled.append(seq)
        else:
            why = _mismatch(rating, points[0])
            if why:
                report.wrong.append(f"seq {seq}: {why}")
    report.unexpected = sorted(set(held) - set(sent))
    return report


def _mismatch(rating: dict[str, Any], point: dict[str, Any]) -> str | None:
    for name in COMPARED:
        if point.get(name) != rating.get(name):
            return f"{name} {point.get(name)!r}, sent {rating.get(name)!r}"
    aspects = rating.get("aspects") or {}
    for name in contract.ASPECTS:
        if point.get(name) != aspects.get(name):
            return f"{name} {point.get(name)!r}, sent {aspects.get(name)!r}"
    if rating["ts"] is not None:
        when = contract.point_time_ns(rating["ts"], rating["seq"])
        if point["time"] != when:
            return f"time {point['time']}, expected {when}"
    return None


def table(reports: list[DeviceVerdict]) -> str:
    """The per-device report as text: devices with differences, then the totals."""
    lines = [
        f"{'site':<20} {'device':<12} {'ratings':>8} {'lost':>6} {'doubled':>8} "
        f"{'wrong':>6} {'unexpected':>10}"
    ]
    for r in reports:
        if r.differences:
            lines.append(
                f"{r.site:<20} {r.device:<12} {r.expected:>8} {len(r.lost):>6} "
                f"{len(r.doubled):>8} {len(r.wrong):>6} {len(r.unexpected):>10}"
            )
            for detail in r.wrong[:5]:
                lines.append(f"    wrong {detail}")
    total = sum(r.expected for r in reports)
    lost = sum(len(r.lost) for r in reports)
    doubled = sum(len(r.doubled) for r in reports)
    wrong = sum(len(r.wrong) for r in reports)
    unexpected = sum(len(r.unexpected) for r in reports)
    lines.append(
        f"{len(reports)} devices, {total} ratings: lost {lost}, doubled {doubled}, "
        f"wrong {wrong}, unexpected {unexpected}"
    )
    return "\n".join(lines)
