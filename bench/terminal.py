"""Firmware figures: heap soak, press to stored-and-acknowledged, queue density, and the
drain of an outage's queue.

Runs the real terminal under the MicroPython Unix port (bench/mpy/terminal_bench.py), from
the image as it ships, run in place from a ROMFS image as from a board's flash (with the bench
script and the Unix board), in a 64 KB heap, against a Mosquitto, an InfluxDB and the real
collector of its own on loopback: a rating leaves the terminal only when the collector has
stored it and said so on the ack topic. Each figure is the median of several runs, and the
timings are also given as a ratio to the same MQTT client's bare QoS 1 round trip, measured
in the same run, since the machines are small and shared.

    .venv/bin/python bench/terminal.py [--runs 3] [--soak 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stats import percentile  # noqa: E402  (bench/, beside this)

from devstack import CollectorProcess, InfluxServer, MosquittoServer, collector_env  # noqa: E402
from fwtools import image  # noqa: E402
from fwtools.unix_port import run_script  # noqa: E402

SCRIPT = ROOT / "bench" / "mpy" / "terminal_bench.py"
HEAP = "64K"  # the terminal's heap
TIMING_HEAP = "96K"  # the latency and baseline runs keep an array of their timings too
TOPIC_ROOT = "bench/v1"
DRAIN_BEFORE = 231  # ratings/s drained when one was in flight until its PUBACK (docs/figures.md)


def run(port: int, mode: str, count: int, folder: Path, rom: Path) -> dict[str, Any]:
    """One run of the bench script in `folder` (its flash image stays there)."""
    result = run_script(
        SCRIPT.stem,
        str(port),
        TOPIC_ROOT,
        mode,
        str(count),
        cwd=folder,
        heap=TIMING_HEAP if mode in ("latency", "baseline") else HEAP,
        rom=rom,
        timeout_s=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{mode}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=500)
    parser.add_argument("--queue", type=int, default=5_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        files = image.build(Path(tmp) / "image", simulation=True)
        files.append(image.compile_mpy(SCRIPT, Path(tmp) / "image"))
        rom = image.write_romfs(files, Path(tmp) / "terminal.romfs")
        broker = MosquittoServer(Path(tmp) / "broker")
        influx = InfluxServer(Path(tmp) / "influx")
        for server in (broker, influx):
            server.start()
            stack.callback(server.stop)
        env = collector_env(TOPIC_ROOT, "bench", "svc-collector-bench")
        collector = CollectorProcess(broker, influx, Path(tmp) / "collector", env)
        collector.start()
        stack.callback(collector.stop)
        report(broker.port, Path(tmp), rom, args)


def fresh(tmp: Path, name: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    return folder


def report(port: int, tmp: Path, rom: Path, args: argparse.Namespace) -> None:
    base_p50, base_p99, base_rate, lat_p50, lat_p99, per_kb, drain_s, drain_rate = (
        [] for _ in range(8)
    )
    for i in range(args.runs):
        base = run(port, "baseline", args.latency, fresh(tmp, f"b{i}"), rom)["ms"]  # µs
        base_p50.append(percentile(base, 0.5) / 1000)
        base_p99.append(percentile(base, 0.99) / 1000)
        base_rate.append(len(base) / sum(base) * 1e6)
        lat = run(port, "latency", args.latency, fresh(tmp, f"l{i}"), rom)["ms"]  # µs
        lat_p50.append(percentile(lat, 0.5) / 1000)
        lat_p99.append(percentile(lat, 0.99) / 1000)
        folder = fresh(tmp, f"q{i}")
        fill = run(port, "fill", args.queue, folder, rom)
        per_kb.append(fill["queued"] / fill["flash_kb"])
        drain = run(port, "drain", 0, folder, rom)
        assert drain["queued"] == args.queue, drain
        drain_s.append(drain["drain_ms"] / 1000)
        drain_rate.append(args.queue / (drain["drain_ms"] / 1000))
    soak = run(port, "soak", args.soak, fresh(tmp, "soak"), rom)
    med = statistics.median
    print(
        f"firmware figures, median of {args.runs} runs, MicroPython Unix port, the image run "
        f"in place from ROMFS, heap {HEAP} ({TIMING_HEAP} for the timed runs)"
    )
    print(
        f"  bare QoS 1 round trip (baseline): p50 {med(base_p50):.2f} ms, "
        f"p99 {med(base_p99):.2f} ms, {med(base_rate):.0f} msg/s one at a time"
    )
    print(
        f"  press to stored and acknowledged: p50 {med(lat_p50):.2f} ms, "
        f"p99 {med(lat_p99):.2f} ms (goal p99 <= 1000 ms); "
        f"p99 = {med(lat_p99) / med(base_p99):.0f}x the baseline's"
    )
    print(
        f"  queue: {med(per_kb):.1f} ratings per KB of flash "
        f"({args.queue} ratings in {args.queue / med(per_kb):.0f} KB)"
    )
    print(
        f"  drain of {args.queue} queued ratings: {med(drain_s):.1f} s, "
        f"{med(drain_rate):.0f}/s = {med(drain_rate) / med(base_rate):.2f}x the baseline rate "
        f"(goal >= {10 * DRAIN_BEFORE}/s, 10x the {DRAIN_BEFORE}/s of one rating in flight)"
    )
    print(
        f"  soak: {soak['count']} ratings, errors {soak['errors']} (disconnections, drops), "
        f"peak gc.mem_alloc() {soak['peak_mem_alloc']} of {soak['heap_total']} bytes, "
        f"peak live after gc.collect() {soak['peak_live_after_gc']} bytes, "
        f"{soak['count'] / (soak['elapsed_ms'] / 1000):.0f} ratings/s"
    )


if __name__ == "__main__":
    main()
