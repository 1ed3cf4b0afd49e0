"""Console figures: every page a hall manager and an appraiser open, with a city's month loaded.

The `city-month` scenario (twenty halls and stations, 104 terminals, clerks moving between
counters; simulator/scenarios/city-month.toml) is played at speed 0 by the simulator's scale
mode through a Mosquitto and the real svc-collector into an InfluxDB, all of the benchmark's
own on free loopback ports in a temporary folder; seven days of one-a-minute telemetry from
every terminal (the terminals page's look-back) are written beside it, made by the collector's
own code. Then `svc-console serve` starts as its own process on that broker and database, with
the broker's roster of devices, every hall's counters and terminals, and the clerk directory
(names and a 24 KB photo each), its settings a hall's (the reconciliation every minute); its
first reconciliation, at start, looks back 35 days and makes every stored poor rating a case
(the benchmark waits until the cases number the poor ratings; none is ever closed, so all are
open, the most a page lists). A manager of one hall then seats a clerk at each counter, takes
a few cases a step on and files a few appeals, through the pages' own forms.

Dates. The console makes cases of poor ratings from the last 35 days only (console/service.py),
and its today page counts from local midnight, so the month is moved to end today: the
scenario's days are the last 30 up to today, in the halls' time zone, and that zone is the
whole-hour UTC offset nearest Shanghai's where it is now evening (17:15 to 23:00; Asia/Shanghai
itself when it is evening there, Etc/GMT-N otherwise), so the last day is a whole working day
before now whatever the machine's clock says. (When today is a Sunday, on which the scenario's
halls close, they open on Sundays.) The register's month, the exports' and the wall's past
month are the calendar month holding most of those days.

Then each page is fetched many times one after another with `requests` (logged in: the session
cookie), warm (once first, not timed), in several runs; a run's figure for a page is the median
and the 90th percentile of its fetches, and the table gives the median over runs of each, and
of its ratio to the baseline measured in the same run: a static file (/static/console.css),
which costs the web server and framework and nothing of the console's. The wall display keeps
a hall's month figures for a minute (console/web/wall.py), so its warm fetches read no
InfluxDB; the first fetch of every other hall's wall, each a cache miss, is timed apart. Last,
for information, the wall is fetched while the manager exports the month's XLSX back to back
(a screen refreshing while someone works: the export is built on the server's event loop).
Goals (#20): every page under 200 ms median, the wall display under 100 ms.

    .venv/bin/python bench/console.py [--halls 20] [--days 30] [--runs 3] [--fetches 20]
    .venv/bin/python bench/console.py --halls 2 --days 3      # a try in about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, closing
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stats import percentile  # noqa: E402  (bench/, beside this)

from collector import device, logs  # noqa: E402
from collector.influx import InfluxHttp  # noqa: E402
from collector.topics import DeviceTopic  # noqa: E402
from console import db as console_db  # noqa: E402
from console import figures, roster  # noqa: E402
from console.web.hall import TERMINAL_LOOKBACK  # noqa: E402
from devstack import (  # noqa: E402
    CollectorProcess,
    ConsoleServer,
    InfluxServer,
    MosquittoServer,
    collector_env,
)
from firmware import contract  # noqa: E402
from simulator import access, scenario, verify  # noqa: E402
from simulator.scale import ScaleRun  # noqa: E402
from simulator.truth import GroundTruth  # noqa: E402

DATABASE = "bench"
PASSWORD = "bench console password"
MANAGER, APPRAISER = "bench-manager", "bench-appraiser"
GOAL_MS, WALL_GOAL_MS = 200.0, 100.0
EVENING = (dt.time(17, 15), dt.time(23, 0))  # local now: the last day closed, midnight far
SHANGHAI_H = 8
PHOTO_BYTES = 24_000
TELEMETRY_BATCH = 20_000
RECONCILE_WAIT_S = 900.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclasses.dataclass(frozen=True)
class Page:
    label: str
    who: str  # "manager", "appraiser" or "anyone" (no login)
    path: str
    goal_ms: float | None


@dataclasses.dataclass
class Figure:
    """A page's runs: each run's median, 90th percentile and median / baseline median."""

    page: Page
    medians: list[float] = dataclasses.field(default_factory=list)
    p90s: list[float] = dataclasses.field(default_factory=list)
    ratios: list[float] = dataclasses.field(default_factory=list)
    size: int = 0
    note: str = ""  # shown instead of the size

    @property
    def median_ms(self) -> float:
        return statistics.median(self.medians) * 1000

    @property
    def missed(self) -> bool:
        return self.page.goal_ms is not None and self.median_ms > self.page.goal_ms


def evening_zone(now: dt.datetime) -> tuple[int, str]:
    """The whole-hour UTC offset nearest Shanghai's where it is evening now, and its zone."""
    fits = [
        hours
        for hours in range(-12, 15)  # the offsets a scenario and the Etc zones allow
        if EVENING[0] <= (now + dt.timedelta(hours=hours)).time() < EVENING[1]
    ]
    hours = min(fits, key=lambda h: (abs(h - SHANGHAI_H), h))
    return hours, "Asia/Shanghai" if hours == SHANGHAI_H else f"Etc/GMT{-hours:+d}"


def city_month(halls: int, days: int, now: dt.datetime) -> tuple[scenario.Scenario, str]:
    """city-month's first `halls` halls, its last `days` days ending today where it is
    evening now; and that zone's name."""
    base = scenario.load("city-month")
    hours, zone = evening_zone(now)
    today = (now + dt.timedelta(hours=hours)).date()
    kept = base.halls[:halls]
    sites = {h.site for h in kept}

    def inside(event: scenario.Event) -> bool:
        return (event.site is None or event.site in sites) and event.day <= days

    chosen = dataclasses.replace(
        base,
        start=today - dt.timedelta(days=days - 1),
        days=days,
        utc_offset_h=hours,
        closed_weekdays=tuple(d for d in base.closed_weekdays if d != today.isoweekday()),
        halls=kept,
        frauds=tuple(filter(inside, base.frauds)),
        faults=tuple(filter(inside, base.faults)),
    )
    return chosen, zone


def fullest_month(chosen: scenario.Scenario) -> str:
    """The calendar month (YYYY-MM) holding most of the scenario's days."""
    months = [(chosen.start + dt.timedelta(days=d)).strftime("%Y-%m") for d in range(chosen.days)]
    return max(sorted(set(months)), key=months.count)


def play(
    chosen: scenario.Scenario, broker: MosquittoServer, influx: InfluxServer, folder: Path
) -> tuple[int, int]:
    """The scenario through the broker and the running collector, until InfluxDB holds every
    rating as sent: (ratings, differences from the ground truth)."""
    truth_path = folder / "truth.jsonl"
    run = ScaleRun(chosen, access.plain(broker.url), contract.ROOT, GroundTruth(truth_path))
    asyncio.run(run.run(connect_timeout_s=120))
    reports = verify.settled(truth_path, InfluxHttp(influx.url, DATABASE), 120)
    return sum(r.expected for r in reports), sum(r.differences for r in reports)


def telemetry(influx: InfluxHttp, chosen: scenario.Scenario, until_ms: int) -> int:
    """TERMINAL_LOOKBACK of one-a-minute telemetry from every terminal, ending at until_ms,
    each point made by the collector's own code; the points written."""
    minutes = int(TERMINAL_LOOKBACK.total_seconds()) // 60
    lines: list[str] = []
    written = 0
    for counter in chosen.counters:
        where = DeviceTopic(counter.site, counter.device, "telemetry")
        for minute in range(minutes):
            body = {"v": 1, "boot": 1, "uptime_s": minute * 60, "rssi": -60 - minute % 7,
                    "heap_free": 40_000, "queue": minute % 3, "fw": "1.0.0", "prompts": minute,
                    "rated": minute, "skipped": 0, "stray": minute // 30, "dropped": 0,
                    "stuck_keys": []}  # fmt: skip
            at_ns = (until_ms - (minutes - minute) * 60_000) * 10**6
            lines.append(device.telemetry(where, json.dumps(body).encode(), at_ns).point())
        if len(lines) >= TELEMETRY_BATCH:
            influx.write(lines)
            written += len(lines)
            lines = []
    if lines:
        influx.write(lines)
    return written + len(lines)


def add_user(db: Path, name: str, role: str, sites: list[str]) -> None:
    command = [sys.executable, "-m", "console.cli", "--db", str(db), "add-user", name]
    command += ["--role", role, *(a for s in sites for a in ("--site", s))]
    subprocess.run(command, input=PASSWORD + "\n", text=True, check=True, capture_output=True)


def set_up_hall(db_path: Path, chosen: scenario.Scenario) -> None:
    """Every hall's name, counters and terminals, and the clerk directory with photos, as an
    admin would have set them in the console (each change in the audit trail)."""
    with closing(console_db.connect(db_path)) as db:
        for number, hall in enumerate(chosen.halls, start=1):
            db.execute(
                "INSERT INTO hall (site, name) VALUES (?, ?)", (hall.site, f"城区{number:02d}厅")
            )
            for counter in hall.counters:
                roster.set_counter(db, hall.site, counter.counter, counter.device, "bench")
            for clerk in hall.clerks:
                photo = b"\xff\xd8\xff\xe0" + random.Random(clerk.staff).randbytes(PHOTO_BYTES)
                roster.save_clerk(db, clerk.staff, clerk.name, photo, "bench")


def case_count(db_path: Path) -> int:
    with closing(sqlite3.connect(db_path)) as db:
        return int(db.execute("SELECT count(*) FROM poor_case").fetchone()[0])


def logged_in(url: str, name: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(
        f"{url}/login", data={"name": name, "password": PASSWORD}, allow_redirects=False
    )
    if answer.status_code != 303:
        raise SystemExit(f"login of {name} refused: {answer.status_code} {answer.text[:300]}")
    return session


def posted(session: requests.Session, url: str, form: dict[str, str]) -> None:
    """A form sent as the page sends it; anything but its redirect stops the benchmark."""
    done = session.post(url, data=form, allow_redirects=False)
    if done.status_code != 303:
        raise SystemExit(f"POST {url} refused: {done.status_code} {done.text[:300]}")


def work(manager: requests.Session, url: str, hall: scenario.Hall, case_ids: list[int]) -> None:
    """A manager's morning, a little of it, through the pages' own forms: a clerk seated at
    every counter (the terminals' retained config), half the cases a step on with a note
    (called back, then fixed), the other half appealed."""
    page = manager.get(f"{url}/cases/{case_ids[0]}")
    found = CSRF.search(page.text)
    if found is None:
        raise SystemExit(f"no CSRF token on /cases/{case_ids[0]}: {page.status_code}")
    csrf = found.group(1)
    for counter, clerk in zip(hall.counters, hall.clerks, strict=False):
        form = {"csrf": csrf, "counter": counter.counter, "staff": clerk.staff}
        posted(manager, f"{url}/hall/{hall.site}/roster/seat", form)
    half = len(case_ids) // 2
    for case_id in case_ids[:half]:
        for to, note in (("called_back", "已电话回访，客户接受解释。"), ("fixed", "已整改。")):
            form = {"csrf": csrf, "to": to, "note": note}
            posted(manager, f"{url}/cases/{case_id}/step", form)
    for case_id in case_ids[half:]:
        form = {"csrf": csrf, "ground": "mistaken", "note": "客户按错了键。"}
        posted(manager, f"{url}/cases/{case_id}/appeal", form)
    give_up = time.monotonic() + 10  # until the link has the configs back from the broker
    while 'data-staff=""' in manager.get(f"{url}/wall/{hall.site}").text:
        if time.monotonic() > give_up:
            print("  (the wall shows no clerk at some counters after 10 s)")
            break
        time.sleep(0.2)


def fetch(session: requests.Session, url: str) -> tuple[float, int]:
    """Seconds to fetch the whole answer, and its size; a page that is not a 200 stops the
    benchmark (a refusal or a login page would be timed as if it were the page)."""
    started = time.perf_counter()
    answer = session.get(url, allow_redirects=False)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"GET {url}: {answer.status_code} {answer.text[:300]}")
    return elapsed, len(answer.content)


def timed(session: requests.Session, url: str, fetches: int) -> tuple[list[float], int]:
    _, size = fetch(session, url)  # warm: templates compiled, connections open
    return [fetch(session, url)[0] for _ in range(fetches)], size


def pages(site: str, month: str, case_id: int, staff: str) -> list[Page]:
    hall = f"site={site}&month={month}"
    g, w = GOAL_MS, WALL_GOAL_MS
    return [
        Page("/healthz (pings InfluxDB)", "anyone", "/healthz", None),
        Page("/login", "anyone", "/login", g),
        Page("today /hall/{site}", "manager", f"/hall/{site}", g),
        Page("/hall/{site}/roster", "manager", f"/hall/{site}/roster", g),
        Page("/hall/{site}/terminals", "manager", f"/hall/{site}/terminals", g),
        Page("/cases (the hall's, every month)", "manager", "/cases", g),
        Page("/cases?site&month", "manager", f"/cases?{hall}", g),
        Page("/cases/{id}", "manager", f"/cases/{case_id}", g),
        Page("/cases.csv?site&month", "manager", f"/cases.csv?{hall}", g),
        Page("/cases.xlsx?site&month", "manager", f"/cases.xlsx?{hall}", g),
        Page("/appeals", "manager", "/appeals", g),
        Page("/suspects/{site} (this month)", "manager", f"/suspects/{site}", g),
        Page("/suspects/{site}?month", "manager", f"/suspects/{site}?month={month}", g),
        Page("/hall/{site}/settings", "manager", f"/hall/{site}/settings", g),
        Page("/clerks", "manager", "/clerks", g),
        Page("/ (every hall's open cases)", "appraiser", "/", g),
        Page("/cases (every hall, newest 500)", "appraiser", "/cases", g),
        Page("/cases?month (every hall)", "appraiser", f"/cases?month={month}", g),
        Page("/appeals (every hall)", "appraiser", "/appeals", g),
        Page("/audit", "appraiser", "/audit", g),
        Page("/audit.csv", "appraiser", "/audit.csv", g),
        Page("/regions", "appraiser", "/regions", g),
        Page("/wall/{site} (cached figures)", "anyone", f"/wall/{site}", w),
        Page("/wall/{site}?month (cached)", "anyone", f"/wall/{site}?month={month}", w),
        Page("/clerks/{staff}/photo", "anyone", f"/clerks/{staff}/photo", w),
    ]


def once(
    label: str, goal_ms: float | None, seconds: list[float], base_s: float, note: str
) -> Figure:
    """A figure of fetches made once, not in runs (their median is over them all)."""
    middle = statistics.median(seconds)
    page = Page(label, "anyone", "", goal_ms)
    return Figure(page, [middle], [percentile(seconds, 0.9)], [middle / base_s], note=note)


def cold_walls(
    anyone: requests.Session, url: str, sites: list[str], month: str, zone: str
) -> list[float]:
    """The first fetch of each hall's wall (this month, then `month` when it is another),
    each reading its figures from InfluxDB."""
    this_month = dt.datetime.now(ZoneInfo(zone)).strftime("%Y-%m")
    found = []
    for site in sites:
        found.append(fetch(anyone, f"{url}/wall/{site}")[0])
        if month != this_month:
            found.append(fetch(anyone, f"{url}/wall/{site}?month={month}")[0])
    return found


def wall_while_exporting(
    sessions: dict[str, requests.Session], url: str, site: str, month: str, count: int
) -> tuple[list[float], list[float]]:
    """The wall's fetches while the hall's manager exports the month's XLSX again and again,
    and those exports' times: a screen refreshing while someone works."""
    done = threading.Event()
    exports: list[float] = []

    def export() -> None:
        while not done.is_set():
            path = f"{url}/cases.xlsx?site={site}&month={month}"
            exports.append(fetch(sessions["manager"], path)[0])

    worker = threading.Thread(target=export)
    worker.start()
    walls = []
    try:
        time.sleep(0.1)
        for _ in range(count):
            walls.append(fetch(sessions["anyone"], f"{url}/wall/{site}")[0])
            time.sleep(0.02)  # to meet the exports at every point of theirs
    finally:
        done.set()
        worker.join()
    return walls, exports


def measure(
    sessions: dict[str, requests.Session], url: str, chosen: list[Page], runs: int, fetches: int
) -> tuple[list[float], list[Figure]]:
    """The baseline's median in each run, and every page's figures."""
    base_runs: list[float] = []
    found = [Figure(page) for page in chosen]
    for run in range(runs):
        base, _ = timed(sessions["anyone"], f"{url}/static/console.css", fetches)
        base_median = statistics.median(base)
        base_runs.append(base_median)
        for figure in found:
            seconds, figure.size = timed(sessions[figure.page.who], url + figure.page.path, fetches)
            figure.medians.append(statistics.median(seconds))
            figure.p90s.append(percentile(seconds, 0.9))
            figure.ratios.append(statistics.median(seconds) / base_median)
        print(f"  run {run + 1} of {runs} done", flush=True)
    return base_runs, found


def table(base_runs: list[float], found: list[Figure]) -> None:
    base_ms = statistics.median(base_runs) * 1000
    print(f"\n{'page':<38} {'user':<9} {'median':>8} {'p90':>8} {'x base':>7} {'goal':>6}  "
          f"{'bytes':>8}")  # fmt: skip
    print(f"{'/static/console.css (baseline)':<38} {'anyone':<9} {base_ms:6.1f}ms")
    for f in found:
        goal = f"{f.page.goal_ms:.0f}" if f.page.goal_ms else "—"
        shown = f.note or f"{f.size:>8,}"
        mark = "  MISSES" if f.missed else ""
        print(f"{f.page.label:<38} {f.page.who:<9} {f.median_ms:6.1f}ms "
              f"{statistics.median(f.p90s) * 1000:6.1f}ms {statistics.median(f.ratios):6.1f}x "
              f"{goal:>6}  {shown}{mark}")  # fmt: skip
    missed = [f.page.label for f in found if f.missed]
    print("\nmisses its goal: " + (", ".join(missed) if missed else "none"))


def load(
    chosen: scenario.Scenario, folder: Path, broker: MosquittoServer, influx: InfluxServer
) -> None:
    """The month through the broker and collector, then the telemetry; how long each took."""
    started = time.perf_counter()
    begun_ms = int(time.time() * 1000)
    ratings, differences = play(chosen, broker, influx, folder)
    played_s = time.perf_counter() - started
    print(f"played {ratings:,} ratings through the broker and collector in {played_s:.0f} s "
          f"({ratings / played_s:,.0f}/s); {differences} differences from the ground truth",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    points = telemetry(InfluxHttp(influx.url, DATABASE), chosen, begun_ms)
    print(f"wrote {points:,} telemetry points in {time.perf_counter() - started:.0f} s",
          flush=True)  # fmt: skip


def start_console(
    chosen: scenario.Scenario,
    zone: str,
    folder: Path,
    broker: MosquittoServer,
    influx: InfluxServer,
    *,
    running: ExitStack,
) -> ConsoleServer:
    """svc-console with its users, halls and clerks, started (stopped with `running`), once
    its reconciliation has made a case of every stored poor rating."""
    console = ConsoleServer(
        folder / "console",
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db=DATABASE,
        known_devices=str(folder / "devices.txt"),
        tz=zone,
        log_level="info",
    )
    db_path = Path(console.settings["db"])
    (folder / "devices.txt").write_text("".join(f"{c.site}/{c.device}\n" for c in chosen.counters))
    add_user(db_path, MANAGER, "manager", [chosen.halls[0].site])
    add_user(db_path, APPRAISER, "appraiser", [])
    set_up_hall(db_path, chosen)
    until_ns = (int(time.time()) + 86_400) * 10**9
    poor = len(figures.poor_ratings(InfluxHttp(influx.url, DATABASE), 0, until_ns))
    started = time.perf_counter()
    console.start()
    running.callback(console.stop)
    made = case_count(db_path)
    while made < poor and time.perf_counter() - started < RECONCILE_WAIT_S:
        time.sleep(0.5)
        made = case_count(db_path)
    print(f"the console's reconciliation made {made:,} cases of {poor:,} stored poor ratings "
          f"in {time.perf_counter() - started:.0f} s from the console's start",
          flush=True)  # fmt: skip
    if made < poor:
        print(f"  (not every one after {RECONCILE_WAIT_S:.0f} s: measuring with {made:,})")
    return console


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="A quick try: --halls 2 --days 3 (about a minute). Prints a table of figures.",
    )
    parser.add_argument(
        "--halls",
        type=int,
        default=20,
        choices=range(1, 21),
        metavar="1..20",
        help="city-month's halls to play, the first ones (default 20: all)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=30,
        choices=range(1, 36),
        metavar="1..35",
        help="days to play, ending today (default 30, the scenario's)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs over every page (default 3)")
    parser.add_argument("--fetches", type=int, default=20,
                        help="timed fetches of each page in a run (default 20)")  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = arguments()
    logs.configure("warning")
    chosen, zone = city_month(args.halls, args.days, dt.datetime.now(dt.UTC))
    month = fullest_month(chosen)
    site = chosen.halls[0].site
    print(f"city-month: {len(chosen.halls)} halls, {len(chosen.counters)} terminals, "
          f"{chosen.start} to {chosen.start + dt.timedelta(days=chosen.days - 1)} in {zone} "
          f"(UTC{chosen.utc_offset_h:+.0f}); the register's month {month}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        folder = Path(tmp)
        broker = MosquittoServer(folder / "broker")
        influx = InfluxServer(folder / "influx")
        for server in (broker, influx):
            server.start()
            running.callback(server.stop)
        env = collector_env(contract.ROOT, DATABASE, "bench-collector")
        collector = CollectorProcess(broker, influx, folder / "collector", env)
        collector.start()
        running.callback(collector.stop)
        load(chosen, folder, broker, influx)
        console = start_console(chosen, zone, folder, broker, influx, running=running)
        url = console.url
        sessions = {
            "anyone": requests.Session(),
            "manager": logged_in(url, MANAGER),
            "appraiser": logged_in(url, APPRAISER),
        }
        with closing(sqlite3.connect(Path(console.settings["db"]))) as db:
            ids = [row[0] for row in db.execute(
                "SELECT id FROM poor_case WHERE site = ? ORDER BY id LIMIT 20", (site,)
            )]  # fmt: skip
            staff = db.execute("SELECT min(staff) FROM clerk WHERE photo IS NOT NULL").fetchone()
        if not ids:
            raise SystemExit(f"no case in {site}: nothing to time the case pages on")
        work(sessions["manager"], url, chosen.halls[0], ids)
        chosen_pages = pages(site, month, ids[0], staff[0])
        print(f"timing {len(chosen_pages)} pages, {args.fetches} fetches each a run, "
              f"{args.runs} runs; {site}'s manager and an appraiser", flush=True)  # fmt: skip
        base_runs, found = measure(sessions, url, chosen_pages, args.runs, args.fetches)
        base_s = statistics.median(base_runs)
        cold = cold_walls(sessions["anyone"], url, [h.site for h in chosen.halls[1:]], month, zone)
        if cold:
            note = f"({len(cold)} halls' first fetches)"
            found.append(
                once("/wall/{site}, first fetch (InfluxDB)", WALL_GOAL_MS, cold, base_s, note)
            )
        walls, exports = wall_while_exporting(sessions, url, site, month, args.fetches * 2)
        shown = f"median {statistics.median(exports) * 1000:.0f} ms" if exports else "none done"
        note = f"(exports meanwhile: {shown})"
        found.append(once("/wall/{site} during XLSX exports", None, walls, base_s, note))
        table(base_runs, found)
        failures = [ln for ln in console.log_tail(10_000).splitlines() if "page_failed" in ln]
        if failures:
            print(f"\nthe console logged {len(failures)} failed pages; the last: {failures[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
