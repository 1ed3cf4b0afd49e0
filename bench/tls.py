"""What TLS costs a terminal: the real firmware under the MicroPython Unix port, on a hall's
broker as svc-broker sets it up (TLS, its own account, the collector on its own) and on a plain
broker, in the same run.

connect  from the process's start to its `connected` event: boot, the TLS handshake (one
         ECDSA P-256 verification) and the MQTT login
press    a score pressed to the collector's ack back at the terminal (the rating stored), as
         the host sees the terminal's events

Each figure is the median of several runs, with TLS's as a ratio to plain's. On an ESP32 the
handshake is far slower (a second or more) and the connection holds about 25 KB of ESP-IDF's
heap; these figures show what the protocol adds on the same machine.

    .venv/bin/python bench/tls.py [--runs 3] [--presses 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stats import percentile  # noqa: E402  (bench/, beside this)

from broker import credentials  # noqa: E402
from devstack import (  # noqa: E402
    CollectorProcess,
    HallBroker,
    InfluxServer,
    MosquittoServer,
    collector_env,
    hall_folder,
)
from firmware import contract  # noqa: E402
from simulator.terminal_process import FirmwareTerminal  # noqa: E402

SITE = "bench"
SETTINGS = {  # every press a rating at once: free mode, no lockout, no reason asked
    "topic_root": contract.ROOT,
    "counter": "01",
    "staff": "E1",
    "mode": "free",
    "lockout_s": 0,
    "ask_reason": False,
}


def measure(terminal: FirmwareTerminal, presses: int) -> tuple[float, list[float]]:
    """(ms from start to connected, ms from each rating to its ack)."""
    started = time.monotonic()
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=60)
        connect_ms = (time.monotonic() - started) * 1000
        acked = []
        for seq in range(1, presses + 1):
            terminal.press(0)
            terminal.wait_for(lambda e, s=seq: e["ev"] == "rated" and e["seq"] == s)
            rated = time.monotonic()
            terminal.wait_acked(seq, timeout_s=30)
            acked.append((time.monotonic() - rated) * 1000)
            time.sleep(0.05)
    finally:
        terminal.stop()
    return connect_ms, acked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--presses", type=int, default=30)
    args = parser.parse_args()
    top = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    figures: dict[str, dict[str, list[float]]] = {
        "tls": {"connect": [], "p50": [], "p99": []},
        "plain": {"connect": [], "p50": [], "p99": []},
    }
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, top, True)  # last, once every server has stopped
        influx = InfluxServer(top / "influx")
        hall = HallBroker(hall_folder(top))
        plain = MosquittoServer(top / "plain")
        for server in (influx, hall, plain):
            server.start()
            stack.callback(server.stop)
        account = top / "collector.toml"
        credentials.add_service(hall.folder, "collector-1", "collector", account)
        devices = hall.folder.add_accounts([f"{SITE}/t{i}" for i in range(args.runs)], "device")
        hall.reload()
        collectors = {
            "tls": CollectorProcess(
                hall,
                influx,
                top / "c-tls",
                collector_env(contract.ROOT, "tls", "collector-1", account),
            ),
            "plain": CollectorProcess(
                plain, influx, top / "c-plain", collector_env(contract.ROOT, "plain", "c-plain")
            ),
        }
        for collector in collectors.values():
            collector.start()
            stack.callback(collector.stop)
        for i in range(args.runs):
            name = f"t{i}"
            runs: dict[str, dict[str, Any]] = {
                "tls": credentials.device_settings(
                    hall.folder, SITE, name, devices[f"{SITE}/{name}"]
                ),
                "plain": {"site": SITE, "device": name, "broker": plain.url},
            }
            for kind, broker_settings in runs.items():
                terminal = FirmwareTerminal(top / kind / name, {**broker_settings, **SETTINGS})
                connect_ms, acked = measure(terminal, args.presses)
                figures[kind]["connect"].append(connect_ms)
                figures[kind]["p50"].append(percentile(acked, 0.5))
                figures[kind]["p99"].append(percentile(acked, 0.99))
    med = {k: {f: statistics.median(v) for f, v in kinds.items()} for k, kinds in figures.items()}
    print(f"TLS against plain MQTT, median of {args.runs} runs, {args.presses} presses each")
    for figure, what in (
        ("connect", "start to connected"),
        ("p50", "press to acked p50"),
        ("p99", "press to acked p99"),
    ):
        tls, clear = med["tls"][figure], med["plain"][figure]
        print(f"  {what}: TLS {tls:.1f} ms, plain {clear:.1f} ms = {tls / clear:.2f}x")
    print(json.dumps(med))


if __name__ == "__main__":
    main()
