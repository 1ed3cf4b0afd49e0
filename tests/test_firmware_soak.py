"""The terminal in a 64 KB heap, from the image as it ships: a soak of 3,000 ratings (10,000
with `-m slow`, as bench/terminal.py), and a drained outage, each rating stored by the real
collector and acknowledged back.

The image runs in place from a ROMFS image mapped outside the heap, as from a board's ROM
partition (fwtools/unix_rom.py); the bench script runs from that image too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fwtools import image
from fwtools.unix_port import FIRMWARE_DIR, run_script

BENCH = FIRMWARE_DIR.parent / "bench" / "mpy" / "terminal_bench.py"
HEAP = "64K"
pytestmark = pytest.mark.xdist_group("soak")  # one after the other, on one worker


@pytest.fixture(scope="module")
def rom(tmp_path_factory) -> Path:
    """The image's .mpy files with the Unix board's and the bench script, as a ROMFS image."""
    out = tmp_path_factory.mktemp("image")
    files = image.build(out / "files", simulation=True)
    files.append(image.compile_mpy(BENCH, out / "files"))
    return image.write_romfs(files, out / "terminal.romfs")


def bench(port: int, root: str, folder: Path, mode: str, count: int, rom: Path) -> dict:
    """The real terminal in a HEAP heap, running the image in place."""
    result = run_script(
        BENCH.stem, str(port), root, mode, str(count), cwd=folder, heap=HEAP, rom=rom
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "count",
    [
        # 120 KB of records: the outbox's 16 KB segments written and freed seven times over
        3_000,
        # the figure's own length (bench/terminal.py): about five minutes, so with the soaks
        pytest.param(10_000, marks=pytest.mark.slow),
    ],
)
def test_thousands_of_ratings_in_a_64_kb_heap(
    micropython, mosquitto, influxdb, collector, database, topic_root, tmp_path, rom, count
):
    """Every rating stored and acknowledged (the bench waits for the queue to empty)."""
    figures = bench(mosquitto.port, topic_root, tmp_path, "soak", count, rom)
    assert figures["errors"] == 0, figures["first_errors"]
    stored = influxdb.query("SELECT count(score) FROM rating", database)
    assert stored[0]["count"] == count
    print(f"soak figures: {figures}")


def test_an_outage_queue_is_drained_oldest_first_after_reboot(
    micropython, mosquitto, collector, topic_root, tmp_path, rom
):
    filled = bench(mosquitto.port, topic_root, tmp_path, "fill", 1000, rom)
    assert filled["queued"] == 1000
    assert filled["queue_bytes"] <= 1000 * 40
    drained = bench(mosquitto.port, topic_root, tmp_path, "drain", 0, rom)
    assert drained["queued"] == 1000
    assert drained["errors"] == 0, drained["first_errors"]
