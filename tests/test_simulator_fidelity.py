"""Fidelity mode: a scenario played on real firmware processes, faults and fraud included."""

from __future__ import annotations

import textwrap

from collector.influx import InfluxHttp
from simulator import access, scenario, truth, verify
from simulator.fidelity import FidelityRun
from simulator.truth import GroundTruth

HALL = """
name = "fidelity-test"
seed = 11

[time]
start = 2026-11-02
window_s = 5
telemetry_s = 5

[hours]
open = "09:00"
close = "09:08"
curve = [1]

[profiles.mixed]
scores = {{ 5 = 50, 4 = 20, 3 = 10, 2 = 10, 1 = 10 }}
reasons = {{ attitude = 1, efficiency = 1 }}

[[halls]]
site = "{site}"
mode = "prompt"
counters = 2
profiles = ["mixed"]
participation = 0.8
customers_per_hour = 50

[[fault]]
kind = "power_cut"
counter = "02"
at = "09:03"
seconds = 2

[[fault]]
kind = "wifi_drop"
counter = "01"
at = "09:04"
seconds = 20

[[fraud]]
kind = "self_rating"
counter = "01"
at = "09:06"
count = 2
"""


def test_a_scenario_on_real_firmware_is_stored_exactly_as_the_firmware_recorded_it(
    mosquitto, influxdb, collector, micropython, topic_root, database, tmp_path
):
    path = tmp_path / "hall.toml"
    # one site name, so one plan: a day's draws are seeded by its hall's name (the topic root
    # and the database keep runs apart); its counter 02 has ratings before the power cut
    path.write_text(textwrap.dedent(HALL.format(site="fidelity")))
    s = scenario.load(path)
    truth_path = tmp_path / "truth.jsonl"
    run = FidelityRun(
        s,
        access.plain(mosquitto.url),
        topic_root,
        GroundTruth(truth_path),
        workdir=tmp_path / "terminals",
    )
    progress = run.run()
    sent = truth.read(truth_path)
    assert len(sent) == progress.sent == progress.acked > 5
    assert len({(r["device"], r["seq"]) for r in sent}) == len(sent)  # each written once
    reports = verify.settled(truth_path, InfluxHttp(influxdb.url, database), 20)
    assert not sum(r.differences for r in reports), verify.table(reports)

    # press times follow the scenario's calendar: 09:00 to 09:08 at UTC+8, that day
    opening = s.day_start_ms(1) + 9 * 3_600_000
    assert all(opening <= r["ts"] <= opening + 9 * 60_000 for r in sent)
    second = s.counters[1].device
    assert sorted({r["boot"] for r in sent if r["device"] == second}) == [0, 1]
    assert sorted(progress.faults) == [
        f"power_cut {s.halls[0].site}/02",
        f"wifi_drop {s.halls[0].site}/01",
    ]
    own = [r for r in sent if r["cause"] == "self_rating"]
    assert len(own) == 2 and all(r["score"] == 5 and r["wait_ms"] < 500 for r in own)
    flagged = influxdb.query("SELECT seq FROM rating WHERE suspect_why = 'fast_press'", database)
    assert len(flagged) == 2  # customers press a second or more after the prompt: never flagged
    customers = [r for r in sent if r["cause"] == "customer" and r["score"] is not None]
    assert customers and all(r["wait_ms"] >= 900 for r in customers)
