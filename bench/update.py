"""Update figures: how long and how much heap an update over the air takes one terminal, and
how many terminals one hall server updates at once.

`one`: a real terminal under the MicroPython Unix port, its image run in place from a ROM
partition in a 64 KB heap (as the tests run it), updated to today's image built as another
version by `svc-firmware publish`'s own code (fwtools/publish.py) over a Mosquitto of its own:
the offer noted, the reset into the update boot, the download written and checked (its heap
free then), the switch into the new image, and the confirmation by a rating a stand-in
collector acknowledges. Each phase is the median of --runs updates, and the whole is given as
a ratio to a plain reboot to a link, measured in the same run.

`fleet`: N terminals (from their sources, their images unpacked into folders) updated at once
by one publisher, N doubling from 1 while a round takes under --budget seconds: the time until
every one confirmed, and terminals a minute, with the ratio to N = 1.

    .venv/bin/python bench/update.py [--runs 3] [--budget 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from devstack import MosquittoServer  # noqa: E402
from fwtools import image  # noqa: E402
from fwtools.publish import Rollout, Tools  # noqa: E402
from simulator.terminal_process import FirmwareTerminal  # noqa: E402

SITE = "bench-hall"
ROOT_TOPIC = "bench/v1"
HEAP = "64K"


class AckAll:
    """A stand-in collector: acknowledges every rating at once on its terminal's ack topic."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, "bench-acks")
        self.client.on_connect = lambda c, *_: c.subscribe(f"{ROOT_TOPIC}/+/+/rating", qos=1)
        self.client.on_message = self._ack
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _ack(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        seq = json.loads(msg.payload)["seq"]
        client.publish(msg.topic.rsplit("/", 1)[0] + "/ack", json.dumps({"v": 1, "seqs": [seq]}), 1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def release(folder: Path, version: str) -> Path:
    sources = image.sources_as(folder / "src", version)
    files = image.build(folder / "files", simulation=True, sources=sources)
    return image.write_romfs(files, folder / f"{version}.romfs")


def tools(broker: MosquittoServer, folder: Path) -> Tools:
    path = folder / "tools.toml"
    path.write_text(
        f'mqtt_url = "{broker.url}"\ntopic_root = "{ROOT_TOPIC}"\nclient_id = "bench-tools"\n'
    )
    return Tools.load(path)


def terminal(
    folder: Path, broker: MosquittoServer, device: str, rom: Path | None
) -> FirmwareTerminal:
    settings = {
        "site": SITE,
        "device": device,
        "broker": broker.url,
        "topic_root": ROOT_TOPIC,
        "counter": "01",
        "staff": "E1001",
    }
    t = FirmwareTerminal(folder, settings, heap=HEAP if rom else None, rom=rom)
    t.reboots = True
    return t


def at(t: FirmwareTerminal, ev: str, after: int = 0, timeout_s: float = 120, **match: Any) -> float:
    """When (time.monotonic()) the event came, waited for."""
    t.wait_for(
        lambda e: e["ev"] == ev and all(e.get(k) == v for k, v in match.items()), timeout_s, after
    )
    return time.monotonic()


def rate(t: FirmwareTerminal) -> None:
    seen = len(t.events)
    t.clerk_key()
    t.wait_for(lambda e: e["ev"] == "opened", after=seen)
    t.press(0)


def one_update(folder: Path, broker: MosquittoServer, factory: Path, new: Path) -> dict[str, float]:
    """One terminal updated, each phase's seconds and the heap free after the download."""
    t = terminal(folder / "t", broker, "ev-0001", factory)
    try:
        t.start()
        at(t, "connected")
        start = time.monotonic()  # a plain reboot to a link: the baseline
        t.stop()
        t.start()
        baseline = at(t, "connected") - start
        rollout = Rollout(tools(broker, folder), SITE, new.read_bytes(), ["ev-0001"])
        runner = threading.Thread(target=rollout.run, args=(300,), daemon=True)
        offered = time.monotonic()
        runner.start()
        noted = at(t, "update_offered")
        fetching = at(t, "update_fetching")
        ready = at(t, "update_ready")
        heap = next(e for e in t.events if e["ev"] == "update_ready")["heap_free"]
        booted = at(t, "boot", fw="0.9.0")
        boot = next(i for i, e in enumerate(t.events) if e.get("fw") == "0.9.0")
        linked = at(t, "connected", after=boot)
        rate(t)
        confirmed = at(t, "update_confirmed")
        runner.join(60)
    finally:
        t.stop()
    return {
        "baseline_s": baseline,
        "offer_noted_s": noted - offered,
        "to_update_boot_s": fetching - noted,
        "download_write_check_s": ready - fetching,
        "switch_and_boot_s": booted - ready,
        "link_s": linked - booted,
        "confirm_s": confirmed - linked,
        "total_s": confirmed - offered,
        "heap_free_after_download": heap,
    }


def fleet(folder: Path, broker: MosquittoServer, new: Path, count: int) -> float:
    """Seconds until `count` terminals offered at once have all confirmed."""
    devices = [f"ev-{n:04d}" for n in range(count)]
    fleet = [terminal(folder / d, broker, d, None) for d in devices]
    try:
        for t in fleet:
            t.start()
        for t in fleet:
            at(t, "connected")
        rollout = Rollout(tools(broker, folder), SITE, new.read_bytes(), devices)
        runner = threading.Thread(target=rollout.run, args=(600,), daemon=True)
        start = time.monotonic()
        runner.start()
        waiting = list(fleet)
        while waiting:
            for t in list(waiting):
                if any(e["ev"] == "boot" and e.get("fw") == "0.9.0" for e in t.events):
                    booted = next(i for i, e in enumerate(t.events) if e.get("fw") == "0.9.0")
                    at(t, "connected", after=booted)
                    rate(t)
                    waiting.remove(t)
            time.sleep(0.1)
        for t in fleet:
            at(t, "update_confirmed")
        took = time.monotonic() - start
        runner.join(60)
    finally:
        for t in fleet:
            t.stop()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=120, help="seconds a fleet round may take")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        top = Path(tmp)
        factory, new = release(top / "factory", "0.4.0"), release(top / "new", "0.9.0")
        print(f"image {new.stat().st_size} bytes (ROMFS, with the simulated board's modules)")
        broker = MosquittoServer(top / "broker")
        broker.start()
        acks = AckAll(broker.port)
        try:
            runs = [one_update(top / f"one-{n}", broker, factory, new) for n in range(args.runs)]
            print(f"one terminal, 64 KB heap, median of {args.runs}:")
            for key in runs[0]:
                print(f"  {key}: {statistics.median(r[key] for r in runs):.2f}")
            total = statistics.median(r["total_s"] for r in runs)
            base = statistics.median(r["baseline_s"] for r in runs)
            print(f"  the whole update = {total / base:.1f}x a plain reboot to a link")
            count, first = 1, None
            while True:
                took = fleet(top / f"fleet-{count}", broker, new, count)
                per_minute = count * 60 / took
                first = first or per_minute
                print(
                    f"fleet of {count}: all confirmed in {took:.1f} s, {per_minute:.1f} "
                    f"terminals/min ({per_minute / first:.2f}x one at a time)"
                )
                if took > args.budget / 2 or count >= 64:
                    break
                count *= 2
        finally:
            acks.close()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
