"""A hall's broker as svc-broker sets it up, started for a test, and MQTT peers that log in to
it with one account each and record what the broker lets them do."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker import credentials
from broker.folder import Folder
from devstack import HallBroker, hall_folder
from tests.servers import serve

SITE = "ha01"
COLLECTOR = "collector-1"
TOOLS = "tools-1"


@dataclass
class Hall:
    """The started broker, and the settings files of its accounts (the passwords kept too,
    so a test can look for them where they must not be)."""

    broker: HallBroker
    files: Path
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Folder:
        return self.broker.folder

    def add_service(self, name: str, role: str) -> Path:
        out = self.files / f"{name}.toml"
        self.passwords[name] = credentials.add_service(self.folder, name, role, out)
        self.folder.reload()
        return out

    def add_device(self, site: str, device: str, **kept: Any) -> Path:
        """Its settings file as svc-broker writes it (merged into `kept`, as over a file the
        installer started); the broker reloaded."""
        out = self.files / f"{site}-{device}.json"
        if kept:
            out.write_text(json.dumps(kept))
        password = credentials.add_device(self.folder, site, device, out)
        self.passwords[f"{site}/{device}"] = password
        self.folder.reload()
        return out


def hall_broker() -> Iterator[Hall]:
    """A fixture's hall broker, set up as `svc-broker init` does, outside pytest's folders
    (root's alone: Mosquitto's own user could not reach them)."""
    top = Path(tempfile.mkdtemp(prefix="svc-hall-"))
    try:
        for server in serve(HallBroker(hall_folder(top))):
            hall = Hall(server, top / "accounts")
            hall.files.mkdir(mode=0o700)
            yield hall
    finally:
        shutil.rmtree(top, ignore_errors=True)


class Peer:
    """One MQTT client on the hall broker under one account (or none), over TLS unless told:
    whether it got in, what it received, and whether the broker dropped it."""

    def __init__(
        self,
        hall: Hall,
        user: str | None,
        password: str | None = None,
        *,
        client_id: str = "",
        tls: bool = True,
    ) -> None:
        self.hall = hall
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if tls:
            self.client.tls_set(ca_certs=str(hall.folder.ca_cert))
        if user is not None:
            self.client.username_pw_set(user, password or hall.passwords.get(user))
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.refusal: str | None = None
        self.dropped = threading.Event()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.dropped.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, bytes(m.payload), bool(m.retain))
        )

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
        else:
            self.connected.set()
        self.answered.set()

    def connect(self, timeout_s: float = 10) -> bool:
        """Log in; True once the broker accepted, False when it refused or said nothing."""
        self.client.connect_async("localhost", self.hall.broker.port, keepalive=30)
        self.client.loop_start()
        self.answered.wait(timeout_s)
        return self.connected.is_set()

    def subscribe(self, topic: str) -> None:
        info = threading.Event()
        self.client.on_subscribe = lambda *_: info.set()
        self.client.subscribe(topic, qos=1)
        assert info.wait(5), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1, waited for: a publish the ACL denies is acknowledged all the same (MQTT
        3.1.1 has no way to say no) and dropped."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
