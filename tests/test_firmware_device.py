"""The real firmware under the MicroPython Unix port, on the simulated board and a real broker."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import MosquittoServer
from simulator.firmware import FirmwareError, FirmwareTerminal

SITE = "sjz-yuhua"


class Listener:
    """A persistent-session subscriber that records every rating payload it gets."""

    def __init__(self, broker: MosquittoServer, topic: str, client_id: str) -> None:
        self.messages: list[dict] = []
        self._got = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id, clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self._got:
            self.messages.append(json.loads(msg.payload))
            self._got.notify_all()

    def wait_count(self, n: int, timeout_s: float = 20) -> list[dict]:
        with self._got:
            self._got.wait_for(lambda: len(self.messages) >= n, timeout_s)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_terminal(path: Path, broker: MosquittoServer, root: str, **extra) -> FirmwareTerminal:
    config = {
        "site": SITE,
        "device": "ev-0001",
        "broker": broker.url,
        "topic_root": root,
        "counter": "01",
        "staff": "E1001",
        **extra,
    }
    return FirmwareTerminal(path, config)


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, which the test may stop and restart."""
    server = MosquittoServer(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


def connected(e: dict) -> bool:
    return e["ev"] == "connected"


def test_seq_and_boot_survive_a_restart(mosquitto, micropython, tmp_path, topic_root):
    listener = Listener(mosquitto, f"{topic_root}/+/+/rating", "listener-restart")
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    try:
        terminal.start()
        terminal.wait_for(connected)
        terminal.press(0)
        terminal.press(4)
        terminal.wait_acked(2)
        terminal.stop()
        terminal.start()
        boot = terminal.wait_for(lambda e: e["ev"] == "boot", after=len(terminal.events) - 1)
        assert (boot["boot"], boot["seq"]) == (1, 2)
        terminal.press(2)
        terminal.wait_acked(3)
    finally:
        terminal.stop()
    messages = listener.wait_count(3)
    listener.close()
    assert [(m["seq"], m["boot"], m["score"]) for m in messages] == [
        (1, 0, 5),
        (2, 0, 1),
        (3, 1, 3),
    ]
    assert all(m["counter"] == "01" and m["staff"] == "E1001" for m in messages)
    assert json.loads((tmp_path / "t" / "counters.json").read_text()) == {"boot": 1, "seq": 3}


def test_presses_during_a_broker_outage_are_delivered_afterwards(
    own_broker, micropython, tmp_path, topic_root
):
    listener = Listener(own_broker, f"{topic_root}/+/+/rating", "listener-outage")
    terminal = make_terminal(tmp_path / "t", own_broker, topic_root, keepalive_s=2)
    try:
        terminal.start()
        terminal.wait_for(connected)
        terminal.press(0)
        terminal.wait_acked(1)
        own_broker.stop()
        terminal.wait_for(lambda e: e["ev"] == "disconnected")
        for button in (1, 2, 3):
            terminal.press(button)
        assert not terminal.of_kind("acked")[1:]
        own_broker.restart()
        for seq in (2, 3, 4):
            terminal.wait_acked(seq, timeout_s=30)
    finally:
        terminal.stop()
    messages = listener.wait_count(4)
    listener.close()
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]
    assert [m["score"] for m in messages] == [5, 4, 3, 2]
    shows = [e["state"] for e in terminal.of_kind("show")]
    assert "offline" in shows


def test_a_button_outside_the_map_is_stray(mosquitto, micropython, tmp_path, topic_root):
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root, buttons=[5, 3, 1])
    try:
        terminal.start()
        terminal.wait_for(connected)
        terminal.press(3)
        terminal.press(2)
        rated = terminal.wait_for(lambda e: e["ev"] == "rated")
    finally:
        terminal.stop()
    assert terminal.of_kind("stray") == [{"ev": "stray", "button": 3}]
    assert (rated["seq"], rated["score"]) == (1, 1)


def test_bad_settings_show_an_error_and_stop(mosquitto, micropython, tmp_path):
    terminal = make_terminal(tmp_path / "t", mosquitto, "svc/v1", site="Not A Site")
    terminal.start()
    try:
        error = terminal.wait_for(lambda e: e["ev"] == "error")
        assert "site" in error["msg"]
        with pytest.raises(FirmwareError):
            terminal.wait_for(connected, timeout_s=3)
    finally:
        terminal.stop()
