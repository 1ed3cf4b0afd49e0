"""A rating travels from the real firmware through Mosquitto and the collector into InfluxDB."""

from __future__ import annotations

import time
from pathlib import Path

from devstack import CollectorProcess, InfluxServer, MosquittoServer
from simulator.terminal_process import FirmwareTerminal
from tests.servers import wait_for

SITE = "sjz-yuhua"
DEVICE = "ev-a1b2c3d4e5f6"


def wait_rows(influxdb: InfluxServer, query: str, database: str, count: int) -> list[dict]:
    return wait_for(lambda: influxdb.query(query, database), lambda rows: len(rows) >= count)


def test_three_presses_become_three_ratings(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    collector: CollectorProcess,
    micropython: str,
    tmp_path: Path,
    topic_root: str,
    database: str,
) -> None:
    terminal = FirmwareTerminal(
        tmp_path / "terminal",
        {
            "site": SITE,
            "device": DEVICE,
            "broker": mosquitto.url,
            "topic_root": topic_root,
            "counter": "03",
            "staff": "E1023",
            "buttons": [5, 4, 3, 2, 1],
            "ask_reason": False,
        },
    )
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected")
        before_ms = time.time() * 1000
        for n, button in enumerate((0, 3, 1), start=1):  # scores 5, 2, 4
            terminal.clerk_key()  # the clerk asks for a rating, the customer presses
            terminal.wait_count("opened", n)
            time.sleep(0.6)  # a person, not a press within 500 ms of the prompt (suspect)
            terminal.press(button)
        rated = [
            terminal.wait_for(lambda e, n=n: e["ev"] == "rated" and e["seq"] == n)
            for n in (1, 2, 3)
        ]
        for seq in (1, 2, 3):
            terminal.wait_acked(seq)
        after_ms = time.time() * 1000
    finally:
        terminal.stop()

    rows = wait_rows(influxdb, "SELECT * FROM rating", database, 3)
    tag_keys = {r["tagKey"] for r in influxdb.query("SHOW TAG KEYS FROM rating", database)}
    assert tag_keys == {"site", "device", "counter", "staff", "mode"}
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [r["score"] for r in rows] == [5, 2, 4] == [e["score"] for e in rated]
    for row in rows:
        assert row["site"] == SITE
        assert row["device"] == DEVICE
        assert row["counter"] == "03"
        assert row["staff"] == "E1023"
        assert row["mode"] == "prompt"
        assert row["rated"] == 1
        assert row["suspect"] == 0
        assert row.get("reason") is None  # tag left out: no reason was given
        assert 500 <= row["wait_ms"] < 5000
        time_ns = row["time"]
        assert isinstance(time_ns, int)
        # press time in ms, seq in the sub-millisecond digits
        assert time_ns % 10**6 == row["seq"]
        assert before_ms - 1 <= time_ns // 10**6 <= after_ms + 1
        assert 0 <= row["delay_ms"] < 10_000
