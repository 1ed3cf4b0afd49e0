"""Fidelity and scale mode: the same presses make the same ratings, and the collector takes both."""

from __future__ import annotations

import asyncio
import time

from fwtools.unix_port import firmware_module
from simulator import access
from simulator.plan import Action
from simulator.scenario import Counter, Hall
from simulator.terminal_process import FirmwareTerminal
from simulator.virtual import MemoryQueue, VirtualTerminal
from tests.servers import wait_for
from tests.test_firmware_outbox import record

SCORE_2, ATTITUDE = 3, 0  # buttons: scores 5 4 3 2 1; reasons attitude efficiency ...


def stored(influxdb, database, device, count):
    query = f"SELECT * FROM rating WHERE device = '{device}'"
    return wait_for(lambda: influxdb.query(query, database), lambda rows: len(rows) >= count, 20)


def firmware_presses(mosquitto, topic_root, site, tmp_path):
    terminal = FirmwareTerminal(
        tmp_path / "fw",
        {
            "site": site,
            "device": "ev-fw",
            "broker": mosquitto.url,
            "topic_root": topic_root,
            "counter": "01",
            "staff": "E00101",
            "buttons": [5, 4, 3, 2, 1],
            "window_s": 3,
        },
    )
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected")
        terminal.clerk_key()
        terminal.wait_count("opened", 1)
        time.sleep(0.6)
        terminal.press(SCORE_2)
        time.sleep(0.5)
        terminal.press(ATTITUDE)
        terminal.clerk_key()  # the next customer walks away: the window closes unrated
        terminal.wait_acked(2, timeout_s=15)
    finally:
        terminal.stop()


async def virtual_presses(mosquitto, topic_root, site, truth):
    counter = Counter(site, "01", "E00101", "any")
    hall = Hall(site, "prompt", 1.0, 1.0, (counter,))
    terminal = VirtualTerminal(
        counter,
        hall,
        root=topic_root,
        broker=access.plain(mosquitto.url).device_settings(site, counter.device),
        window_s=3,
        record=truth.append,
    )
    serving = asyncio.ensure_future(terminal.serve(60))
    await asyncio.wait_for(terminal.connected.wait(), 10)
    t = int(time.time() * 1000)
    terminal.act(Action(t, site, "01", "prompt"))
    terminal.act(Action(t + 600, site, "01", "press", SCORE_2))
    terminal.act(Action(t + 1100, site, "01", "reason", ATTITUDE))
    terminal.act(Action(t + 1200, site, "01", "prompt"))
    terminal.tick(t + 1200 + 3000)
    deadline = time.monotonic() + 10
    while terminal.unacked and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    serving.cancel()
    return terminal


def test_both_modes_make_the_same_ratings_and_the_collector_takes_them_alike(
    mosquitto, influxdb, collector, micropython, topic_root, database, tmp_path
):
    site = "modes-hall"
    firmware_presses(mosquitto, topic_root, site, tmp_path)
    truth: list[dict] = []
    virtual = asyncio.run(virtual_presses(mosquitto, topic_root, site, truth))
    assert virtual.tally.acked == 2 and [r["seq"] for r in truth] == [1, 2]

    real = stored(influxdb, database, "ev-fw", 2)
    simulated = stored(influxdb, database, virtual.counter.device, 2)
    assert len(real) == len(simulated) == 2
    for fw, vt in zip(real, simulated, strict=True):
        present = {k for k, v in fw.items() if v is not None} - {"delay_ms", "wait_ms"}
        assert present == {k for k, v in vt.items() if v is not None} - {"delay_ms", "wait_ms"}
        for key in ("seq", "score", "reason", "rated", "counter", "staff", "mode", "suspect"):
            assert fw[key] == vt[key], key
        assert (fw["wait_ms"] is None) == (vt["wait_ms"] is None)
    assert [r["score"] for r in real] == [2, None]
    assert real[0]["reason"] == "attitude"
    assert (collector.state_dir / "deadletter.jsonl").read_text() == ""  # none set aside


def test_scale_modes_memory_queue_answers_as_the_flash_outbox(tmp_path):
    """Scale mode stands its in-memory queue in for firmware/outbox.py under the firmware's
    own uplink: every call the uplink makes must answer alike."""
    outbox = firmware_module("outbox")
    flash, memory = outbox.Outbox(str(tmp_path / "q"), segment_bytes=300), MemoryQueue()
    for seq in range(1, 41):
        assert flash.append(record(seq)) == memory.append(record(seq))
    steps = [({2, 3}, 8, 0), ({1, 5}, 16, 4), ({4, 6, 7, 40}, 50, 30), (set(), 5, 0)]
    for acked, limit, skip in steps:
        flash_gone: list[int] = []
        memory_gone: list[int] = []
        assert flash.forget(acked.__contains__, flash_gone.append, False) == memory.forget(
            acked.__contains__, memory_gone.append, False
        )
        assert flash_gone == memory_gone
        assert flash.oldest(limit, skip) == memory.oldest(limit, skip)
        assert (len(flash), flash.peek()) == (len(memory), memory.peek())
    assert flash.head_saved is False and memory.head_saved is True  # memory has nothing to save
