"""Dashboard and appraisal figures on a month of 1,000 terminals (about a million ratings).

A month of ratings is made up (a seeded stream: halls of six counters, eight clerks a hall on
rotating counters, a share skipped, suspect and poor with reasons), each message checked and
turned into its point by the collector's own code, and written to an InfluxDB of its own: the
last full calendar month in Asia/Shanghai, plus today up to now, plus six hours of telemetry
from every terminal at one report a minute.

Then `svc-appraisal` runs for that month (timed), and every panel's queries, macros expanded,
run as a dashboard opens: on its default range (Hall live: today; Clerk appraisal: the month's
stored rows; Terminal health: 6 hours) with the variables it starts on (one hall on Hall live
and Terminal health, All elsewhere). Then, for information, Hall live and Terminal health with
every hall picked (a province at once), and Hall live over the whole month for one hall and for
every hall. Each figure is the median of several runs; the baseline, measured in the same run,
is the plainest query InfluxDB answers over the same range (`count("seq")` of every rating in
it). Goals: every panel under 1 s as a dashboard opens, the appraisal under 60 s.

    .venv/bin/python bench/dashboards.py [--terminals 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector import device, rating  # noqa: E402
from collector.influx import InfluxError, InfluxHttp  # noqa: E402
from collector.topics import DeviceTopic  # noqa: E402
from dashboards import appraisal, check  # noqa: E402
from dashboards.boards import ALL, hall_live  # noqa: E402
from dashboards.macros import TimeRange, expand  # noqa: E402
from dashboards.model import Dashboard  # noqa: E402
from devstack import InfluxServer  # noqa: E402
from firmware import contract  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
COUNTERS = 6
CLERKS = 8
OPEN_H, CLOSE_H = 9, 17
PER_HOUR = 5.2  # ratings (with skipped windows) a counter makes an hour: ~1.2 M a month
SCORES = contract.DEFAULT_BUTTONS
SCORE_WEIGHTS = (50, 30, 10, 6, 4)
REASONS = (*contract.REASONS, None)
BATCH = 20_000


def month_before(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    first_this = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    first_last = (first_this - dt.timedelta(days=1)).replace(day=1)
    return first_last, first_this


def day_ratings(
    rng: random.Random, terminal: int, day: dt.date, seq: int, until_ms: int
) -> tuple[list[tuple[DeviceTopic, dict[str, object]]], int]:
    """One terminal's ratings of one local day, as (topic, message) pairs; seq goes on."""
    hall, counter = divmod(terminal, COUNTERS)
    site, device_id = f"hall-{hall:04d}", f"ev-{terminal:06d}"
    clerks = [f"H{hall:04d}{c}" for c in range(CLERKS)]
    random.Random(f"{hall}/{day}").shuffle(clerks)  # who sits where today
    morning = clerks[counter]
    afternoon = clerks[(counter + 3) % CLERKS]
    start = dt.datetime(day.year, day.month, day.day, OPEN_H, tzinfo=ZONE)
    t = start.timestamp() * 1000
    end = t + (CLOSE_H - OPEN_H) * 3_600_000
    found: list[tuple[DeviceTopic, dict[str, object]]] = []
    while True:
        t += rng.expovariate(PER_HOUR / 3_600_000)
        if t >= min(end, until_ms):
            return found, seq
        seq += 1
        hour = dt.datetime.fromtimestamp(t / 1000, ZONE).hour
        skipped = rng.random() < 0.2
        score = None if skipped else rng.choices(SCORES, SCORE_WEIGHTS)[0]
        reason = rng.choice(REASONS) if score is not None and score <= 2 else None
        message = {
            "v": 1,
            "seq": seq,
            "boot": 1,
            "ts": int(t),
            "score": score,
            "reason": reason,
            "counter": f"{counter + 1:02d}",
            "staff": None if hour == 12 else (morning if hour < 12 else afternoon),
            "ticket": None,
            "mode": "prompt",
            "wait_ms": 100 if rng.random() < 0.005 else rng.randrange(1000, 9000),
        }
        found.append((DeviceTopic(site, device_id, "rating"), message))


def load(influx: InfluxHttp, terminals: int, now: dt.datetime) -> int:
    """The last calendar month and today up to now, and six hours of telemetry; returns the
    ratings written."""
    first, after = month_before(now)
    days = [first.date() + dt.timedelta(days=i) for i in range((after - first).days)]
    days.append(now.date())
    now_ms = int(now.timestamp() * 1000)
    lines: list[str] = []
    written = 0
    for terminal in range(terminals):
        rng = random.Random(terminal)
        seq = 0
        for day in days:
            found, seq = day_ratings(rng, terminal, day, seq, now_ms)
            for where, message in found:
                parsed = rating.parse(where, json.dumps(message).encode())
                why = "fast_press" if message["score"] and message["wait_ms"] < 500 else None
                lines.append(parsed.point(message["ts"] + 200, None, why))
        where = DeviceTopic(f"hall-{terminal // COUNTERS:04d}", f"ev-{terminal:06d}", "telemetry")
        for minute in range(360):
            body = {"v": 1, "boot": 1, "uptime_s": minute * 60, "rssi": -60, "heap_free": 40_000,
                    "queue": 0, "fw": "1.0.0", "prompts": minute, "rated": minute, "skipped": 0,
                    "stray": minute // 30}  # fmt: skip
            at_ns = (now_ms - (360 - minute) * 60_000) * 10**6
            lines.append(device.telemetry(where, json.dumps(body).encode(), at_ns).point())
        if len(lines) >= BATCH:
            written += sum(ln.startswith("rating") for ln in lines)
            influx.write(lines)
            lines = []
    written += sum(ln.startswith("rating") for ln in lines)
    influx.write(lines)
    return written


def timed(influx: InfluxHttp, query: str) -> float:
    """Seconds to answer; infinity when InfluxDB did not within the client's 10 s."""
    started = time.perf_counter()
    try:
        influx.query(query)
    except InfluxError:
        return float("inf")
    return time.perf_counter() - started


def median_of(runs: int, influx: InfluxHttp, query: str) -> float:
    return statistics.median(timed(influx, query) for _ in range(runs))


def board_figures(
    influx: InfluxHttp, board: Dashboard, when: TimeRange, runs: int, label: str
) -> list[float]:
    """Each panel's time (its queries one after another, each the median of runs), with the
    variables as `when` picks them or as Grafana starts the dashboard."""
    chosen, _ = check.starting_values(influx, board, when)
    plain = 'SELECT count("seq") FROM rating WHERE $timeFilter'
    base = median_of(runs, influx, expand(plain, chosen))
    picked = chosen.values.get("site")
    halls = "every hall" if isinstance(picked, tuple) and len(picked) > 1 else f"hall {picked}"
    print(f"\n{board.title} ({label}, {halls}); baseline count(seq) {base * 1000:.0f} ms")
    worst = []
    for panel in board.panels:
        seconds = sum(
            median_of(runs, influx, expand(q.influxql, chosen, panel.max_points))
            for q in panel.queries
        )
        worst.append(seconds)
        shown = "  >10 s" if seconds == float("inf") else f"{seconds * 1000:4.0f} ms"
        try:
            rows = str(
                len(influx.query(expand(panel.queries[0].influxql, chosen, panel.max_points)))
            )
        except InfluxError:
            rows = "?"
        print(f"  {panel.title:<40} {shown}  {seconds / base:6.1f}x baseline  {rows:>5} rows")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    now = dt.datetime.now(ZONE)
    with tempfile.TemporaryDirectory() as folder:
        server = InfluxServer(Path(folder) / "influxdb")
        server.start()
        try:
            influx = InfluxHttp(server.url, "bench")
            influx.ensure_database()
            started = time.perf_counter()
            ratings = load(influx, args.terminals, now)
            print(f"loaded {ratings:,} ratings of {args.terminals} terminals and six hours of "
                  f"telemetry in {time.perf_counter() - started:.0f} s")  # fmt: skip
            first, after = month_before(now)
            month = first.strftime("%Y-%m")
            runs = []
            for _ in range(args.runs):
                started = time.perf_counter()
                rows = appraisal.compute(influx, month, "Asia/Shanghai", 30)
                appraisal.store(influx, month, "Asia/Shanghai", rows)
                runs.append(time.perf_counter() - started)
            month_ms = (int(first.timestamp() * 1000), int(after.timestamp() * 1000))
            base = median_of(
                args.runs,
                influx,
                f'SELECT count("seq") FROM rating WHERE time >= {month_ms[0]}ms '
                f"AND time < {month_ms[1]}ms",
            )
            appraisal_s = statistics.median(runs)
            each = ", ".join(f"{r:.1f}" for r in runs)
            print(f"svc-appraisal {month}: {len(rows)} rows, median {appraisal_s:.1f} s of "
                  f"{args.runs} ({each}); {appraisal_s / base:.1f}x a bare count over the month "
                  f"({base * 1000:.0f} ms); goal under 60 s")  # fmt: skip
            now_ms = int(now.timestamp() * 1000)
            midnight = int(
                now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000
            )
            figures = board_figures(influx, ALL[0], TimeRange(midnight, now_ms), args.runs, "today")
            figures += board_figures(
                influx, ALL[1], TimeRange(*month_ms, {"month": month}), args.runs, month
            )
            figures += board_figures(
                influx, ALL[2], TimeRange(now_ms - 6 * 3_600_000, now_ms), args.runs, "6 hours"
            )
            print(
                f"\nslowest panel as the dashboards open: {max(figures) * 1000:.0f} ms (goal 1 s)"
            )
            every = {"site": tuple(f"hall-{h:04d}" for h in range(-(-args.terminals // COUNTERS)))}
            today = TimeRange(midnight, now_ms, every)
            board_figures(influx, hall_live.DASHBOARD, today, args.runs, "today")
            board_figures(
                influx,
                ALL[2],
                TimeRange(now_ms - 6 * 3_600_000, now_ms, every),
                args.runs,
                "6 hours",
            )
            board_figures(influx, hall_live.DASHBOARD, TimeRange(*month_ms), args.runs, "a month")
            board_figures(
                influx, hall_live.DASHBOARD, TimeRange(*month_ms, every), args.runs, "a month"
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
