"""Collector ingest: sustained QoS 1 rate into InfluxDB, against a bare paho subscriber.

N ratings are queued by the broker for a persistent session while its client is away; then the
client connects and the time to drain them is measured, from its connection: for a bare paho
subscriber that stores nothing (the baseline), and for svc-collector until InfluxDB holds all N.
The collector's clock starts at its `mqtt_connected` log line, so that the interpreter's start
(imports, about half a second) is not counted as ingest time. Each figure is the
median of several runs, and the collector's rate is given as a ratio to the baseline measured in
the same run (goal: at least 0.8), with lost and doubled ratings counted.

    .venv/bin/python bench/collector.py [--runs 3] [--ratings 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import CollectorProcess, InfluxServer, MosquittoServer  # noqa: E402
from tests.samples import RATING_EXAMPLE  # noqa: E402


def publish(port: int, root: str, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{root}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    press = random.Random(count)
    for seq in range(1, count + 1):  # 500 terminals, each rated every 500 s or so of press time
        ts = RATING_EXAMPLE["ts"] + seq * 1000 + press.randrange(400_000)
        body = {**RATING_EXAMPLE, "seq": seq, "ts": ts}
        infos.append(client.publish(f"{root}/sjz-yuhua/ev-{seq % 500}/rating", json.dumps(body), 1))
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def bare_rate(port: int, root: str, count: int) -> float:
    """Messages per second a paho subscriber that stores nothing drains from the broker."""
    got = threading.Event()
    received = [0]

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        received[0] += 1
        if received[0] >= count:
            got.set()

    def client() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{root}", clean_session=False)
        c.on_message = on_message
        c.connect("127.0.0.1", port)
        return c

    first = client()
    first.subscribe(f"{root}/+/+/rating", qos=1)
    first.loop(1)
    first.disconnect()
    publish(port, root, count)
    started = time.perf_counter()
    second = client()
    second.loop_start()
    got.wait(600)
    elapsed = time.perf_counter() - started
    second.disconnect()
    second.loop_stop()
    return count / elapsed


def collector_rate(
    broker: MosquittoServer,
    influx: InfluxServer,
    folder: Path,
    root: str,
    count: int,
    members: int,
) -> tuple[float, int]:
    """Ratings per second svc-collector stores, and how many points InfluxDB then holds.

    With several members they share one subscription, as collectors scale out (README);
    the clock starts at the first member's connection.
    """
    db = root.replace("/", "_")
    collectors = []
    for member in range(members):
        env = {
            "SVC_TOPIC_ROOT": root,
            "SVC_INFLUX_DB": db,
            "SVC_CLIENT_ID": f"c-{db}-{member}",
            "SVC_HTTP": "",
            "SVC_SHARE_GROUP": "bench" if members > 1 else "",
        }
        collectors.append(CollectorProcess(broker, influx, folder / f"m{member}", env))
    for collector in collectors:
        collector.start()  # makes the session and its subscription
        collector.stop()
    publish(broker.port, root, count)
    connections = [c.log().count('"event": "mqtt_connected"') for c in collectors]
    for collector in collectors:
        collector.start()
    held = 0
    give_up = time.monotonic() + 600
    while held < count and time.monotonic() < give_up:
        rows = influx.query("SELECT count(score) FROM rating", db)
        held = int(rows[0]["count"]) if rows else 0
        time.sleep(0.02)
    finished = time.time()
    for collector in collectors:
        collector.stop()
    started = min(connected_at(c.log(), n) for c, n in zip(collectors, connections, strict=True))
    return count / (finished - started), held


def connected_at(log: str, earlier: int) -> float:
    """Unix time of the collector's connection after `earlier` ones, from its JSON log."""
    lines = [line for line in log.splitlines() if '"event": "mqtt_connected"' in line]
    stamp = json.loads(lines[earlier])["timestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ratings", type=int, default=20_000)
    parser.add_argument(
        "--members", type=int, default=1, help="collectors sharing the subscription"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer(Path(tmp) / "broker")
        influx = InfluxServer(Path(tmp) / "influx")
        broker.start()
        influx.start()
        try:
            bare, stored, held = [], [], []
            for run in range(args.runs):
                bare.append(bare_rate(broker.port, f"bare{run}/v1", args.ratings))
                rate, count = collector_rate(
                    broker,
                    influx,
                    Path(tmp) / f"c{run}",
                    f"coll{run}/v1",
                    args.ratings,
                    args.members,
                )
                stored.append(rate)
                held.append(count)
        finally:
            influx.stop()
            broker.stop()
    med = statistics.median
    print(f"collector ingest, {args.ratings} queued QoS 1 ratings, median of {args.runs} runs")
    print(f"  bare paho subscriber (baseline): {med(bare):.0f} msg/s  (runs: {_rates(bare)})")
    print(
        f"  svc-collector x{args.members} into InfluxDB: {med(stored):.0f} ratings/s "
        f"= {med(stored) / med(bare):.2f}x the baseline (goal >= 0.80)  (runs: {_rates(stored)})"
    )
    print(
        f"  points held after each run: {held} (lost or doubled: "
        f"{sum(abs(h - args.ratings) for h in held)})"
    )


if __name__ == "__main__":
    main()
