"""The terminal within a small heap, from the image as it ships: a soak of 10,000 ratings,
and a drained outage, each rating stored by the real collector and acknowledged back.
(112 KB of the 64-bit Unix port; the goal is 64 KB, not reached yet: README, "Figures".)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fwtools import image
from simulator.firmware import FIRMWARE_DIR, run_script

SCRIPT = FIRMWARE_DIR.parent / "bench" / "mpy" / "terminal_bench.py"
HEAP = "112K"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """The .mpy image, as svc-firmware builds it for a board."""
    out = tmp_path_factory.mktemp("image")
    image.build(out)
    return out


def bench(port: int, root: str, folder: Path, mode: str, count: int, shipped: Path) -> dict:
    """The real terminal in a HEAP heap, running the image's .mpy files."""
    result = run_script(
        SCRIPT, str(port), root, mode, str(count), cwd=folder, heap=HEAP, image=shipped
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ten_thousand_ratings_in_a_small_heap(
    micropython, mosquitto, collector, topic_root, tmp_path, shipped
):
    figures = bench(mosquitto.port, topic_root, tmp_path, "soak", 10_000, shipped)
    assert figures["errors"] == 0
    assert figures["count"] == 10_000
    assert figures["heap_total"] <= 114 * 1024
    assert figures["peak_live_after_gc"] < figures["heap_total"]
    print(f"soak figures: {figures}")


def test_an_outage_queue_is_drained_oldest_first_after_reboot(
    micropython, mosquitto, collector, topic_root, tmp_path, shipped
):
    filled = bench(mosquitto.port, topic_root, tmp_path, "fill", 1000, shipped)
    assert filled["queued"] == 1000
    assert filled["queue_bytes"] <= 1000 * 40
    drained = bench(mosquitto.port, topic_root, tmp_path, "drain", 0, shipped)
    assert drained["queued"] == 1000
    assert drained["errors"] == 0
