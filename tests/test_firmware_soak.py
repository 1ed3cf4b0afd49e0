"""The terminal within a device-sized heap: a soak of 10,000 ratings, and a drained outage."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.firmware import FIRMWARE_DIR, run_script

SCRIPT = FIRMWARE_DIR.parent / "bench" / "mpy" / "terminal_bench.py"


def bench(port: int, folder: Path, mode: str, count: int) -> dict:
    """Run the real terminal in a 128 KB heap, as roughly an ESP32's 64 KB of 32-bit objects."""
    result = run_script(SCRIPT, str(port), mode, str(count), cwd=folder, heap="128K")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ten_thousand_ratings_in_a_128k_heap(micropython, mosquitto, tmp_path):
    figures = bench(mosquitto.port, tmp_path, "soak", 10_000)
    assert figures["errors"] == 0
    assert figures["count"] == 10_000
    assert figures["heap_total"] <= 130 * 1024
    assert figures["peak_live_after_gc"] < figures["heap_total"]
    print(f"soak figures: {figures}")


def test_an_outage_queue_is_drained_oldest_first_after_reboot(micropython, mosquitto, tmp_path):
    filled = bench(mosquitto.port, tmp_path, "fill", 1000)
    assert filled["queued"] == 1000
    assert filled["queue_bytes"] <= 1000 * 40
    drained = bench(mosquitto.port, tmp_path, "drain", 0)
    assert drained["queued"] == 1000
    assert drained["errors"] == 0
