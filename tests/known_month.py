"""A month whose ground truth is known, and its edges, for the dashboard and appraisal tests.

Two halls play 31 October to 1 December 2026, two hours a day from 07:00 in Asia/Shanghai, so
the first hour of 1 November and of 1 December (local) is still the month before in UTC. A
prompt-mode hall has a roster (clerks moving counters, a split shift, a short shift, days off,
hours with nobody logged in) and a clerk rating themselves (suspect); a child presses before
opening (stray). A free-mode station rates attitude and efficiency apart (the aspect mode);
its two clerks' customers score them alike for one and apart for the other. Every rating goes
through the real broker and collector into InfluxDB.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector.influx import InfluxHttp
from simulator import access, scenario, truth, verify
from simulator.scale import ScaleRun
from simulator.truth import GroundTruth
from tests.servers import start_collector, wait_for

SCENARIO = """
name = "known-month"
seed = 11

[time]
start = 2026-10-31
days = 32
utc_offset_h = 8
speed = 0
telemetry_s = 1

[hours]
open = "07:00"
close = "09:00"
curve = [0.7, 1.0]

[profiles.good]
scores = {{ 5 = 60, 4 = 25, 3 = 8, 2 = 4, 1 = 3 }}
reasons = {{ attitude = 20, efficiency = 50, expertise = 10, environment = 10, other = 10 }}

[profiles.poor]
scores = {{ 5 = 20, 4 = 25, 3 = 25, 2 = 18, 1 = 12 }}
reasons = {{ attitude = 50, efficiency = 30, expertise = 10, environment = 5, other = 5 }}
reason_share = 0.9

[profiles.fair]
scores = {{ 5 = 40, 4 = 35, 3 = 13, 2 = 7, 1 = 5 }}
reasons = {{ attitude = 30, efficiency = 40, expertise = 15, environment = 5, other = 10 }}

[profiles.kind_but_slow]
scores = {{ 5 = 40, 4 = 35, 3 = 13, 2 = 7, 1 = 5 }}
reasons = {{ other = 1 }}
attitude = {{ 5 = 70, 4 = 25, 3 = 5 }}
efficiency = {{ 4 = 20, 3 = 30, 2 = 30, 1 = 20 }}

[[halls]]
site = "{hall}"
mode = "prompt"
counters = 3
profiles = ["fair"]
participation = 0.8
customers_per_hour = 20
clerks = [
  {{ staff = "K01", name = "张敏", profile = "good", shifts = ["07:00-09:00"], days_off = [6] }},
  {{ staff = "K02", name = "李娜", profile = "poor", shifts = ["07:00-08:00"] }},
  {{ staff = "K03", name = "王强", profile = "fair", shifts = ["07:00-07:40", "08:00-09:00"] }},
  {{ staff = "K04", name = "刘洋", profile = "good", shifts = ["08:30-09:00"], days_off = [6, 7] }},
  {{ staff = "K05", profile = "fair", shifts = ["07:00-09:00"], days_off = [1, 2, 3] }},
]

[[halls]]
site = "{station}"
mode = "free"
aspects = true
counters = 2
profiles = ["fair"]
participation = 0.6
customers_per_hour = 10
clerks = [
  {{ staff = "S01", name = "周平", profile = "good", shifts = ["07:00-09:00"] }},
  {{ staff = "S02", name = "吴芳", profile = "kind_but_slow", shifts = ["07:00-09:00"] }},
]

[[fraud]]
kind = "self_rating"
site = "{hall}"
counter = "01"
day = 2
at = "08:40"
count = 3

[[fraud]]
kind = "burst"
site = "{hall}"
counter = "02"
day = 1
at = "06:30"
count = 6
"""


@dataclass
class KnownMonth:
    influx: InfluxHttp
    database: str
    scenario: scenario.Scenario
    truth: list[dict[str, Any]]  # every rating, as sent, with its cause and clerk
    stray: int  # presses with no window open, over the run
    real_from_ms: int  # when the run began, in real time: device points are stored then on
    real_to_ms: int

    @property
    def hall(self) -> str:
        return self.scenario.halls[0].site

    def honest(self) -> list[dict[str, Any]]:
        """The ratings that are not suspect: only a clerk rating themselves is, here."""
        return [r for r in self.truth if r["cause"] != "self_rating"]


@pytest.fixture(scope="session")
def known_month(mosquitto, influxdb, tmp_path_factory) -> KnownMonth:
    folder: Path = tmp_path_factory.mktemp("known-month")
    tag = uuid.uuid4().hex[:6]
    path = folder / "known-month.toml"
    path.write_text(SCENARIO.format(hall="hall-km", station="station-km"))  # a roster as planned
    chosen = scenario.load(path)
    root, database = f"km{tag}/v1", f"km_{tag}"
    collector = start_collector(mosquitto, influxdb, folder / "collector", root, database)
    real_from_ms = int(time.time() * 1000)
    truth_path = folder / "truth.jsonl"
    try:
        run = ScaleRun(chosen, access.plain(mosquitto.url), root, GroundTruth(truth_path))
        asyncio.run(run.run())
        writer = InfluxHttp(influxdb.url, database)
        reports = verify.settled(truth_path, writer, 60)
        assert sum(r.differences for r in reports) == 0, verify.table(reports)
        stray = sum(t.stray for t in run.progress.tallies.values())
        figure(  # the last device points are stored
            writer,
            'SELECT sum("s") FROM (SELECT max("stray") AS "s" FROM device GROUP BY "device")',
            stray,
        )
        figure(  # the terminals' last wills, once the run dropped their connections
            writer,
            'SELECT count("o") FROM (SELECT last("online") AS "o" FROM device GROUP BY "device") '
            'WHERE "o" = 0',
            len(chosen.counters),
        )
    finally:
        assert collector.stop() == 0, collector.log()[-2000:]
    return KnownMonth(
        writer,
        database,
        chosen,
        truth.read(truth_path),
        stray,
        real_from_ms,
        int(time.time() * 1000) + 1000,
    )


def figure(writer: InfluxHttp, query: str, expected: int) -> None:
    """Wait until the query's one figure is as expected."""

    def found() -> list[object]:
        rows = writer.query(query)
        return [v for k, v in rows[0].items() if k != "time"] if rows else []

    assert wait_for(found, lambda figures: figures == [expected], 10) == [expected], query
