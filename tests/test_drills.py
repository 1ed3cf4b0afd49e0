"""Drills through the real chain: broker, collectors, InfluxDB and simulated terminals running
the firmware's uplink. Each breaks a part mid-load and ends in `svc-sim verify`: nothing lost,
nothing doubled. Before the end-to-end acknowledgement the first two each lost ratings."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from pathlib import Path

import pytest

from collector.influx import InfluxHttp
from devstack import InfluxServer, MosquittoServer
from simulator import access, truth, verify
from simulator.scale import ScaleRun
from simulator.truth import GroundTruth
from tests.servers import start_collector
from tests.test_simulator_scale import load


def play(s, broker: MosquittoServer, root: str, truth_path: Path, restart=None) -> ScaleRun:
    run = ScaleRun(s, access.plain(broker.url), root, GroundTruth(truth_path), restart)
    asyncio.run(run.run())
    return run


def assert_all_stored_once(run: ScaleRun, truth_path: Path, influx: InfluxServer, db: str):
    sent = truth.read(truth_path)
    assert len(sent) == run.progress.sent == run.progress.acked
    reports = verify.settled(truth_path, InfluxHttp(influx.url, db), 60)
    lost = sum(len(r.lost) for r in reports)
    doubled = sum(len(r.doubled) for r in reports)
    assert (lost, doubled) == (0, 0), verify.table(reports)
    assert not sum(r.differences for r in reports), verify.table(reports)
    assert sum(r.expected for r in reports) == len(sent)
    return sent


@pytest.fixture
def broker(tmp_path):
    server = MosquittoServer(tmp_path / "broker", autosave_s=1800)  # Mosquitto's default
    server.start()
    yield server
    server.stop()


def test_broker_restart_under_load_with_two_collectors_sharing(
    broker, influxdb, tmp_path, topic_root, database
):
    """Mosquitto 2.0 drops what comes for a shared subscription whose members have not yet
    come back after a restart; the terminals send again what no collector acknowledged."""
    shared = {"share_group": "drill"}
    pair = [
        start_collector(broker, influxdb, tmp_path / name, topic_root, database, name, **shared)
        for name in ("c1", "c2")
    ]

    fault = """
    [[fault]]
    kind = "broker_restart"
    day = 1
    at = "09:20"
    seconds = 5
    """
    s = load(tmp_path, speed=240, counters=40, per_hour=90, extra=textwrap.dedent(fault))
    truth_path = tmp_path / "truth.jsonl"
    try:
        run = play(s, broker, topic_root, truth_path, broker.outage)
        sent = assert_all_stored_once(run, truth_path, influxdb, database)
    finally:
        for proc in pair:
            proc.stop()
    assert run.progress.faults == ["broker_restart"]
    assert len(sent) > 1500
    print(
        f"drill: {len(sent)} ratings, {sum(t.resent for t in run.progress.tallies.values())} "
        "sent again for want of an ack"
    )


def test_broker_killed_while_the_collector_is_down(
    broker, influxdb, tmp_path, topic_root, database
):
    """The broker acknowledged ratings it kept only in memory for the absent collector, then
    died: the terminals still hold them and send them again."""
    one = start_collector(broker, influxdb, tmp_path / "solo", topic_root, database, "solo")
    s = load(tmp_path, speed=180, counters=20, per_hour=90)
    truth_path = tmp_path / "truth.jsonl"
    crashed = threading.Event()

    def crash() -> None:
        time.sleep(4)
        one.stop()  # the collector is down: the broker queues for its session, in memory
        time.sleep(3)
        broker.kill()  # and dies before saving any of it
        broker.restart()
        time.sleep(1)
        one.start()
        crashed.set()

    drill = threading.Thread(target=crash)
    drill.start()
    try:
        run = play(s, broker, topic_root, truth_path)
        drill.join()
        assert crashed.is_set()
        assert_all_stored_once(run, truth_path, influxdb, database)
    finally:
        drill.join()
        one.stop()


def test_influxdb_down_when_the_collector_starts(broker, tmp_path, topic_root, database):
    """The collector takes ratings into its spool until InfluxDB first answers."""
    influx = InfluxServer(tmp_path / "influx")
    influx.start()
    influx.stop()
    one = start_collector(broker, influx, tmp_path / "early", topic_root, database, "early")
    s = load(tmp_path, speed=360, counters=10, per_hour=90)
    truth_path = tmp_path / "truth.jsonl"
    try:
        run = play(s, broker, topic_root, truth_path)  # every rating acknowledged: spooled
        assert run.progress.acked == run.progress.sent > 0
        influx.restart()
        assert_all_stored_once(run, truth_path, influx, database)
    finally:
        one.stop()
        influx.stop()
