"""Helpers for tests that run real firmware terminals against a real broker."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devstack import MosquittoServer
from simulator.terminal_process import FirmwareTerminal

SITE = "sjz-yuhua"


class Listener:
    """A persistent-session subscriber that records every message it gets, by topic kind."""

    def __init__(self, broker: MosquittoServer, root: str, client_id: str) -> None:
        self.root = root
        self.messages: list[tuple[str, Any, bool]] = []
        self._got = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id, clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{root}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload
        with self._got:
            self.messages.append((kind, payload, bool(msg.retain)))
            self._got.notify_all()

    def of(self, kind: str) -> list[Any]:
        with self._got:
            return [p for k, p, _ in self.messages if k == kind]

    def wait(self, kind: str, count: int, timeout_s: float = 20) -> list[Any]:
        with self._got:
            self._got.wait_for(lambda: len(self.of(kind)) >= count, timeout_s)
        found = self.of(kind)
        assert len(found) >= count, f"{len(found)} {kind} messages of {count}: {found}"
        return found

    def publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        info = self.client.publish(topic, json.dumps(payload), qos=1, retain=retain)
        info.wait_for_publish(timeout=5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_terminal(
    path: Path,
    server: MosquittoServer,
    root: str,
    device: str = "ev-0001",
    heap: str | None = None,
    rom: Path | None = None,
    **settings: Any,
) -> FirmwareTerminal:
    """heap and rom as FirmwareTerminal takes them; settings over the tests' own."""
    config = {
        "site": SITE,
        "device": device,
        "broker": server.url,
        "topic_root": root,
        "counter": "01",
        "staff": "E1001",
        "keepalive_s": 4,
        **settings,
    }
    return FirmwareTerminal(path, config, heap=heap, rom=rom)


def device_topic(root: str, kind: str, device: str = "ev-0001") -> str:
    return f"{root}/{SITE}/{device}/{kind}"


class Withholding:
    """Stands in for a collector that stores every rating but those of some seqs (as if it
    could not read them): acknowledges each other one at once on its terminal's ack topic."""

    def __init__(self, broker: MosquittoServer, root: str, withheld: set[int]) -> None:
        self.withheld = withheld
        subscribed = threading.Event()
        client_id = "withholding-" + root.partition("/")[0]
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{root}/+/+/rating", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(5), "no SUBACK"

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        seq = json.loads(msg.payload)["seq"]
        if seq not in self.withheld:
            ack = json.dumps({"v": 1, "seqs": [seq]})
            client.publish(msg.topic.rsplit("/", 1)[0] + "/ack", ack, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def relink(terminal: FirmwareTerminal) -> None:
    """Wi-Fi off until the terminal has seen it go, then on again: a new connection."""
    seen = len(terminal.events)
    terminal.wifi(False)
    terminal.wait_for(lambda e: e["ev"] == "wifi" and not e["up"], after=seen)
    terminal.wifi(True)
