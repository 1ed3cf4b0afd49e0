"""Scale mode's figures: virtual terminals in one process, and the ratings they get across.

N terminals (N/10 halls of 10 counters), each running the firmware's own uplink, play one busy
hour at speed 0 against a Mosquitto, an InfluxDB and a collector of the benchmark's own: the time
until all are connected, the ratings per second stored and acknowledged back to the terminals
(a rating counts once its terminal has the collector's ack), and the process's peak resident
memory. The baseline, measured in the same run, is one paho client publishing the same number of
QoS 1 ratings as fast as the broker takes them (stored by nobody).

    .venv/bin/python bench/simulator.py [--terminals 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from example_rating import EXAMPLE as RATING_EXAMPLE  # noqa: E402  (bench/, beside this)

from devstack import CollectorProcess, InfluxServer, MosquittoServer, collector_env  # noqa: E402
from simulator import access, scenario  # noqa: E402
from simulator.scale import ScaleRun  # noqa: E402
from simulator.truth import GroundTruth  # noqa: E402

HALLS = """
name = "bench"
[time]
start = 2026-11-02
speed = 0
telemetry_s = 60
[hours]
open = "09:00"
close = "10:00"
curve = [1]
[profiles.any]
scores = {{ 5 = 50, 4 = 30, 3 = 10, 2 = 5, 1 = 5 }}
reasons = {{ efficiency = 1 }}
[[halls]]
site = "bench-{{n:04d}}"
copies = {halls}
counters = 10
profiles = ["any"]
participation = 0.9
customers_per_hour = {per_hour}
"""


def simulated(port: int, terminals: int, per_hour: int, folder: Path) -> tuple[float, float, int]:
    """(seconds to connect all, ratings acknowledged per second, ratings)."""
    path = folder / "bench.toml"
    path.write_text(textwrap.dedent(HALLS.format(halls=terminals // 10, per_hour=per_hour)))
    run = ScaleRun(
        scenario.load(path),
        access.plain(f"mqtt://127.0.0.1:{port}"),
        "bench/v1",
        GroundTruth(folder / "truth.jsonl"),
    )
    started = time.perf_counter()
    connected: list[float] = []

    async def timed() -> None:
        async def note_connected() -> None:
            await asyncio.gather(*(t.connected.wait() for t in run.terminals.values()))
            connected.append(time.perf_counter())

        watcher = asyncio.ensure_future(note_connected())
        await run.run(connect_timeout_s=300)
        watcher.cancel()

    asyncio.run(timed())
    finished = time.perf_counter()
    return (
        connected[0] - started,
        run.progress.acked / (finished - connected[0]),
        run.progress.acked,
    )


def bare(port: int, count: int) -> float:
    """QoS 1 ratings per second one paho client gets acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    body = json.dumps(RATING_EXAMPLE)
    started = time.perf_counter()
    infos = [client.publish("bare/v1/s/d/rating", body, 1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--per-hour", type=int, default=20, help="customers a counter an hour")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    connect, rate, base = [], [], []
    ratings = 0
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer(Path(tmp) / "broker")
        influx = InfluxServer(Path(tmp) / "influx")
        broker.start()
        influx.start()
        try:
            for run in range(args.runs):
                folder = Path(tmp) / f"run{run}"
                folder.mkdir()
                env = collector_env("bench/v1", f"run{run}", f"svc-collector-{run}")
                collector = CollectorProcess(broker, influx, folder / "collector", env)
                collector.start()
                try:
                    c, r, ratings = simulated(broker.port, args.terminals, args.per_hour, folder)
                finally:
                    collector.stop()
                connect.append(c)
                rate.append(r)
                base.append(bare(broker.port, ratings))
        finally:
            influx.stop()
            broker.stop()
    med = statistics.median
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scale mode, {args.terminals} virtual terminals in one process, median of {args.runs}")
    print(f"  all connected after {med(connect):.1f} s")
    print(
        f"  {ratings} ratings a run, stored and acknowledged at {med(rate):.0f}/s = "
        f"{med(rate) / med(base):.2f}x one bare paho publisher ({med(base):.0f}/s)"
    )
    print(f"  peak resident memory of the process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
