"""Collector figures: sustained ingest, receipt to queryable, and resident memory.

ingest   N ratings are queued by the broker for a persistent session while its client is away;
         then the client connects and the time to drain them is measured, from its connection:
         for a bare paho subscriber that stores nothing (the baseline), and for svc-collector
         until InfluxDB holds all N. The collector's clock starts at its `mqtt_connected` log
         line, so that the interpreter's start (about half a second) is not counted. Goal: at
         least 0.8x the baseline, none lost or doubled.
latency  Ratings published at half the collector's sustained rate (measured first, in the same
         run); for each, the time from the broker's acknowledgement of its publication (the
         broker has it to deliver) until a query finds it in InfluxDB: receipt to queryable,
         plus one loopback hop. Goal: p99 within 1 s. The baseline is the same for a bare
         subscriber in a process of its own: broker acknowledgement to receipt.
memory   Resident memory of svc-collector (VmRSS, and the peak VmHWM) after 10,000 terminals
         each sent state, telemetry a few times and a rating, against the same collector idle.

Each figure is the median of several runs on a broker and database of its own.

    .venv/bin/python bench/collector.py ingest|latency|memory [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from example_rating import EXAMPLE as RATING_EXAMPLE  # noqa: E402  (bench/, beside this)
from stats import percentile  # noqa: E402

from devstack import CollectorProcess, InfluxServer, MosquittoServer, collector_env  # noqa: E402

PRESS = random.Random(7)


def rating(seq: int) -> tuple[str, bytes]:
    """A rating of 500 terminals', each rated every 500 s or so of press time: (where, body)."""
    ts = RATING_EXAMPLE["ts"] + seq * 1000 + PRESS.randrange(400_000)
    body = {**RATING_EXAMPLE, "seq": seq, "ts": ts}
    return f"sjz-yuhua/ev-{seq % 500}/rating", json.dumps(body).encode()


def publisher(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{name}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish(port: int, root: str, count: int) -> None:
    client = publisher(port, root)
    infos = []
    for seq in range(1, count + 1):
        where, body = rating(seq)
        infos.append(client.publish(f"{root}/{where}", body, 1))
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def session(port: int, client_id: str, root: str) -> None:
    """A persistent session subscribed to the ratings, with its client gone."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.connect("127.0.0.1", port)
    client.subscribe(f"{root}/+/+/rating", qos=1)
    client.loop(1)
    client.disconnect()


def bare_rate(port: int, root: str, count: int) -> float:
    """Messages per second a paho subscriber that stores nothing drains from the broker."""
    got = threading.Event()
    received = [0]

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        received[0] += 1
        if received[0] >= count:
            got.set()

    session(port, f"bare-{root}", root)
    publish(port, root, count)
    started = time.perf_counter()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{root}", clean_session=False)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    got.wait(600)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


class Stack:
    """A broker and a database of the benchmark's own, and collectors pointed at them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.broker = MosquittoServer(folder / "broker")
        self.influx = InfluxServer(folder / "influx")
        self._made = 0

    def __enter__(self) -> Stack:
        self.broker.start()
        self.influx.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.influx.stop()
        self.broker.stop()

    def collectors(self, members: int = 1) -> tuple[str, str, list[CollectorProcess]]:
        """(topic root, database, collectors) on a root and database no earlier run used."""
        self._made += 1
        root, db = f"b{self._made}/v1", f"b{self._made}"
        made = []
        for member in range(members):
            group = "bench" if members > 1 else ""
            env = collector_env(root, db, f"c-{db}-{member}", share_group=group)
            folder = self.folder / db / str(member)
            made.append(CollectorProcess(self.broker, self.influx, folder, env))
        return root, db, made

    def count(self, db: str, query: str = "SELECT count(score) FROM rating") -> int:
        rows = self.influx.query(query, db)
        return int(rows[0]["count"]) if rows else 0


def collector_rate(stack: Stack, count: int, members: int) -> tuple[float, int]:
    """Ratings per second svc-collector stores, and how many points InfluxDB then holds.

    With several members they share one subscription, as collectors scale out (docs/collector.md);
    the clock starts at the first member's connection.
    """
    root, db, collectors = stack.collectors(members)
    for collector in collectors:
        collector.start()  # makes the session and its subscription
        collector.stop()
    publish(stack.broker.port, root, count)
    connections = [c.log().count('"event": "mqtt_connected"') for c in collectors]
    for collector in collectors:
        collector.start()
    held = 0
    give_up = time.monotonic() + 600
    while held < count and time.monotonic() < give_up:
        held = stack.count(db)
        time.sleep(0.05)  # a count of every point costs InfluxDB: not too often
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


def in_order(seq: int) -> tuple[str, bytes]:
    """A rating of 5,000 terminals', press times rising with seq: (where, body)."""
    body = {**RATING_EXAMPLE, "seq": seq, "ts": RATING_EXAMPLE["ts"] + seq * 10}
    return f"sjz-yuhua/ev-{seq % 5000}/rating", json.dumps(body).encode()


def paced(client: mqtt.Client, root: str, rate: float, seconds: float) -> list[float]:
    """Publish in_order() ratings at `rate` a second for `seconds`; the time the broker
    acknowledged each, which is when it had the message to deliver."""
    total = int(rate * seconds)
    if total >= 65_535:
        raise ValueError("packet ids would repeat within the run; publish fewer")
    acked: dict[int, float] = {}
    client.on_publish = lambda _c, _u, mid, _r, _p: acked.__setitem__(mid, time.time())
    mids: list[int] = []
    started = time.time()
    while len(mids) < total:
        due = min(total, int((time.time() - started) * rate) + 1)
        while len(mids) < due:
            where, body = in_order(len(mids) + 1)
            mids.append(client.publish(f"{root}/{where}", body, 1).mid)
        time.sleep(0.002)
    give_up = time.monotonic() + 30
    while len(acked) < total and time.monotonic() < give_up:
        time.sleep(0.01)
    return [acked[mid] for mid in mids]


def collector_latency(stack: Stack, rate: float, seconds: float) -> list[float]:
    """Seconds from the broker having each rating until InfluxDB holds it, at `rate` a second.

    Rating k is queryable once the highest seq stored reaches k: one publisher's QoS 1
    messages arrive in order, and the collector stores them in order. The query looks only
    at press times from the last rating seen on, so that polling costs InfluxDB little.
    """
    root, db, (collector,) = stack.collectors()
    collector.start()
    client = publisher(stack.broker.port, root)
    sent: list[float] = []
    sender = threading.Thread(target=lambda: sent.extend(paced(client, root, rate, seconds)))
    sender.start()
    seen: list[float] = []
    total = int(rate * seconds)
    give_up = time.monotonic() + seconds + 60
    while len(seen) < total and time.monotonic() < give_up:
        since_ns = (RATING_EXAMPLE["ts"] + len(seen) * 10) * 1_000_000
        rows = stack.influx.query(f"SELECT max(seq) FROM rating WHERE time >= {since_ns}", db)
        now = time.time()
        if rows:
            seen.extend([now] * (int(rows[0]["max"]) - len(seen)))
        time.sleep(0.01)
    sender.join()
    client.disconnect()
    client.loop_stop()
    collector.stop()
    return [s - p for s, p in zip(seen, sent, strict=False)]


def _bare_receiver(port: int, root: str, count: int, ready: Any, out: Any) -> None:
    """In a process of its own, as the collector is: receive `count` ratings, send their times."""
    received: list[float] = []
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        received.append(time.time())
        if len(received) >= count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{root}")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(f"{root}/+/+/rating", qos=1)
    client.loop_start()
    time.sleep(0.5)
    ready.set()
    done.wait(120)
    client.disconnect()
    client.loop_stop()
    out.put(received)


def bare_latency(stack: Stack, rate: float, seconds: float) -> list[float]:
    """Seconds from the broker having each rating until a bare subscriber has it (baseline)."""
    root = f"bare-latency-{time.monotonic_ns()}/v1"
    context = multiprocessing.get_context("spawn")
    ready, out = context.Event(), context.Queue()
    total = int(rate * seconds)
    receiver = context.Process(
        target=_bare_receiver, args=(stack.broker.port, root, total, ready, out)
    )
    receiver.start()
    ready.wait(30)
    sender = publisher(stack.broker.port, root)
    sent = paced(sender, root, rate, seconds)
    received = out.get(timeout=150)
    receiver.join()
    sender.disconnect()
    sender.loop_stop()
    return [r - p for r, p in zip(received, sent, strict=False)]


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def collector_memory(stack: Stack, terminals: int, reports: int) -> tuple[int, int, int]:
    """(idle RSS, RSS and peak RSS after the terminals), KiB."""
    root, db, (collector,) = stack.collectors()
    collector.start()
    time.sleep(1)
    idle, _ = rss_kb(collector.pid)
    client = publisher(stack.broker.port, root)
    infos = []
    for n in range(terminals):
        where = f"{root}/hall-{n // 20}/ev-{n:06d}"
        infos.append(client.publish(f"{where}/state", b'{"v":1,"online":true,"boot":1}', 1))
        body = {**RATING_EXAMPLE, "seq": 1, "ts": RATING_EXAMPLE["ts"] + n * 10}
        infos.append(client.publish(f"{where}/rating", json.dumps(body).encode(), 1))
    for round_ in range(reports):
        for n in range(terminals):
            body = {**TELEMETRY, "uptime_s": 60 * (round_ + 1), "queue": round_}
            where = f"{root}/hall-{n // 20}/ev-{n:06d}"
            infos.append(client.publish(f"{where}/telemetry", json.dumps(body).encode(), 1))
    for info in infos:
        info.wait_for_publish(60)
    give_up = time.monotonic() + 120
    wanted = terminals * (reports + 1)
    while stack.count(db, "SELECT count(online) FROM device") < wanted:
        if time.monotonic() > give_up:
            raise RuntimeError("the collector did not store every device report")
        time.sleep(0.2)
    rss, peak = rss_kb(collector.pid)
    client.disconnect()
    client.loop_stop()
    collector.stop()
    return idle, rss, peak


TELEMETRY = {
    "v": 1,
    "boot": 1,
    "rssi": -61,
    "heap_free": 41232,
    "fw": "0.2.0",
    "prompts": 120,
    "rated": 97,
    "skipped": 23,
    "stray": 4,
}


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rates)


def ingest_figure(stack: Stack, args: argparse.Namespace) -> None:
    bare, stored, held = [], [], []
    for run in range(args.runs):
        bare.append(bare_rate(stack.broker.port, f"bare{run}/v1", args.ratings))
        rate, count = collector_rate(stack, args.ratings, args.members)
        stored.append(rate)
        held.append(count)
    med = statistics.median
    print(f"collector ingest, {args.ratings} queued QoS 1 ratings, median of {args.runs} runs")
    print(f"  bare paho subscriber (baseline): {med(bare):.0f} msg/s  (runs: {_rates(bare)})")
    print(
        f"  svc-collector x{args.members} into InfluxDB: {med(stored):.0f} ratings/s "
        f"= {med(stored) / med(bare):.2f}x the baseline (goal >= 0.80)  (runs: {_rates(stored)})"
    )
    lost = sum(abs(h - args.ratings) for h in held)
    print(f"  points held after each run: {held} (lost or doubled: {lost})")


def latency_figure(stack: Stack, args: argparse.Namespace) -> None:
    sustained, _ = collector_rate(stack, args.ratings, 1)
    rate = sustained / 2
    collector_p50, collector_p99, bare_p99, worst = [], [], [], []
    for _run in range(args.runs):
        took = collector_latency(stack, rate, args.seconds)
        collector_p50.append(percentile(took, 0.5))
        collector_p99.append(percentile(took, 0.99))
        worst.append(max(took))
        bare_p99.append(percentile(bare_latency(stack, rate, args.seconds), 0.99))
    med = statistics.median
    print(
        f"receipt to queryable at half load ({rate:.0f} ratings/s of a sustained "
        f"{sustained:.0f}/s, {args.seconds:.0f} s each), median of {args.runs} runs"
    )
    print(
        f"  svc-collector: p50 {med(collector_p50) * 1000:.0f} ms, "
        f"p99 {med(collector_p99) * 1000:.0f} ms (goal <= 1000 ms), "
        f"max {med(worst) * 1000:.0f} ms"
    )
    print(f"  bare subscriber, broker to receipt (baseline): p99 {med(bare_p99) * 1000:.1f} ms")


def memory_figure(stack: Stack, args: argparse.Namespace) -> None:
    idle, rss, peak = [], [], []
    for _run in range(args.runs):
        a, b, c = collector_memory(stack, args.terminals, args.reports)
        idle.append(a)
        rss.append(b)
        peak.append(c)
    med = statistics.median
    grown = med(rss) - med(idle)
    print(
        f"collector memory, {args.terminals} terminals, each: state, a rating and "
        f"{args.reports} telemetry reports; median of {args.runs} runs"
    )
    print(f"  idle (baseline): {med(idle) / 1024:.1f} MiB resident")
    print(
        f"  after the terminals: {med(rss) / 1024:.1f} MiB resident "
        f"({med(rss) / med(idle):.2f}x idle; {grown * 1024 / args.terminals:.0f} bytes per "
        f"terminal), peak {med(peak) / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("figure", choices=["ingest", "latency", "memory"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ratings", type=int, default=30_000, help="ingest: ratings queued")
    parser.add_argument("--members", type=int, default=1, help="ingest: collectors sharing")
    parser.add_argument("--seconds", type=float, default=10, help="latency: seconds per run")
    parser.add_argument("--terminals", type=int, default=10_000, help="memory: terminals")
    parser.add_argument("--reports", type=int, default=3, help="memory: telemetry each")
    args = parser.parse_args()
    figure = {"ingest": ingest_figure, "latency": latency_figure, "memory": memory_figure}
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp)) as stack:
        figure[args.figure](stack, args)


if __name__ == "__main__":
    main()
