"""Long soaks, outside the default suite (`./dev test -m slow`)."""

from __future__ import annotations

import asyncio

import pytest

from collector.influx import InfluxHttp
from simulator import access, scenario, truth, verify
from simulator.scale import ScaleRun
from simulator.truth import GroundTruth
from tests.servers import start_collector

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_a_month_of_a_city_is_stored_exactly_once(
    mosquitto, influxdb, topic_root, database, tmp_path
):
    """city-month: twenty halls and stations, a month, clerks on shifts, fraud and a jammed
    key, played as fast as the collector takes it; every rating stored once, as sent."""
    month = scenario.load("city-month")
    collector = start_collector(mosquitto, influxdb, tmp_path / "collector", topic_root, database)
    truth_path = tmp_path / "truth.jsonl"
    try:
        run = ScaleRun(month, access.plain(mosquitto.url), topic_root, GroundTruth(truth_path))
        asyncio.run(run.run())
        reports = verify.settled(truth_path, InfluxHttp(influxdb.url, database), 120)
    finally:
        assert collector.stop() == 0, collector.log()[-2000:]
    sent = truth.read(truth_path)
    assert len(sent) == run.progress.sent == run.progress.acked > 100_000
    assert not sum(r.differences for r in reports), verify.table(reports)
    assert sum(r.expected for r in reports) == len(sent)
