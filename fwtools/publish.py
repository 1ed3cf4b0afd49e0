"""svc-firmware publish: offer a built image to a hall's terminals and serve it to them.

The offer is a retained message on each terminal's `update` topic (docs/firmware.md, "Over
the air"); a terminal fetches the image over its own link, a few chunks at a time, and this
process answers. A wave (`--wave N`) offers it to N terminals first, the rest only once
those confirmed (the new image booted, linked and had a rating acknowledged); one that
refuses or rolls back stops the rollout. Runs until every terminal offered has confirmed,
refused or rolled back, or until the time-out; what each terminal did is printed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from collector.settings import MqttAddress, SettingsError, from_toml, parse_mqtt_url
from firmware import contract
from fwtools.unix_port import firmware_module

log = logging.getLogger("svc-firmware")
update = firmware_module("update")  # the update's part of the contract
TOOLS_KEYS = ("mqtt_url", "mqtt_ca_file", "client_id", "topic_root")
DISCOVER_S = 3.0  # terminals whose retained state comes within this after subscribing
FINAL = ("ok", "refused", "failed", "rolled_back")  # what a terminal's update ends in
ROMFS_HEADER = b"\xd2\xcd\x31"  # what an image svc-firmware build writes starts with
SHA256 = re.compile(f"[0-9a-f]{{{update.SHA256_HEX}}}")


def offer(device: str, size: int, sha256: str, kind: str = "image") -> dict[str, object]:
    """An image (or settings) offered to one terminal (firmware/update.py checks it)."""
    return {
        "v": contract.VERSION,
        "kind": kind,
        "device": device,
        "size": size,
        "sha256": sha256,
    }


def fetch_problem(message: object) -> str | None:
    """Why a terminal's fetch cannot be answered, or None."""
    if not isinstance(message, dict) or message.get("v") != contract.VERSION:
        return "not a fetch"
    sha, offset, count = message.get("sha256"), message.get("offset"), message.get("count")
    if not isinstance(sha, str) or not SHA256.fullmatch(sha):
        return "sha256 must be 64 hex digits"
    if type(offset) is not int or offset < 0:
        return "offset must be a whole number from 0"
    if type(count) is not int or not 1 <= count <= update.FETCH_CHUNKS:
        return f"count must be 1 to {update.FETCH_CHUNKS}"
    return None


def chunk(sha256: str, offset: int, data: bytes) -> bytes:
    """A chunk's payload, as firmware/update.py's chunk_header() reads it: `OFFSET TAG` and a
    newline, then the image's bytes from OFFSET."""
    return b"%d %s\n" % (offset, sha256[: update.CHUNK_TAG].encode()) + data


@dataclass(frozen=True)
class Tools:
    """A tools account's settings file (svc-broker add-service --role tools)."""

    address: MqttAddress
    ca_file: Path | None
    client_id: str
    root: str

    @classmethod
    def load(cls, path: Path) -> Tools:
        values = from_toml(path, TOOLS_KEYS, lambda key: key)
        if "mqtt_url" not in values:
            raise SettingsError(f"{path}: no mqtt_url (svc-broker add-service writes one)")
        ca = values.get("mqtt_ca_file")
        return cls(
            parse_mqtt_url(values["mqtt_url"]),
            Path(ca) if ca else None,
            values.get("client_id", "svc-firmware"),
            values.get("topic_root", contract.ROOT),
        )


@dataclass
class Terminal:
    device: str
    offered: bool = False
    result: str | None = None  # the update's result, as the terminal's state says it
    why: str | None = None
    fw: str | None = None
    online: bool | None = None
    offered_at: float | None = None  # time.monotonic() of the offer
    done_at: float | None = None  # of its outcome


@dataclass
class Rollout:
    """One image offered to terminals of one site, and served to them."""

    tools: Tools
    site: str
    image: bytes
    devices: list[str] = field(default_factory=list)  # empty: every terminal of the site
    wave: int | None = None
    kind: str = "image"  # or "settings": the image is then the settings offered, as JSON

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.image).hexdigest()
        self.terminals: dict[str, Terminal] = {d: Terminal(d) for d in self.devices}
        self.chunks_sent = 0
        self.stopped: str | None = None  # why the rollout stopped early
        self._changed = threading.Condition()
        self._seen: dict[str, dict[str, Any]] = {}  # device -> its retained state
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.tools.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.tools.address.log_in(self.client, self.tools.ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message

    def topic(self, device: str, kind: str) -> str:
        return contract.topic(self.tools.root, self.site, device, kind)

    # --- the run ---

    def run(self, timeout_s: float) -> dict[str, Terminal]:
        """Offer, serve and watch until done or timeout_s; each terminal's outcome."""
        address = self.tools.address
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        try:
            if not self._subscribed.wait(10):
                raise ConnectionError(f"no answer from the broker at {address.host}")
            deadline = time.monotonic() + timeout_s
            time.sleep(DISCOVER_S)  # the retained states: who there is, who runs what
            with self._changed:
                for device in sorted(self._seen) if not self.terminals else ():
                    self.terminals[device] = self._terminal(device)
                for device, terminal in self.terminals.items():  # running it: not offered
                    report = self._seen.get(device, {}).get("update")
                    if isinstance(report, dict) and report == {
                        "sha256": self.sha256,
                        "result": "ok",
                    }:
                        terminal.result = "ok"
            for wave in self._waves():
                self._offer(wave)
                if not self._wait(wave, deadline):
                    break
                if any(self.terminals[d].result != "ok" for d in wave):
                    self.stopped = "a terminal of the wave did not confirm"
                    break
        finally:
            self.client.disconnect()
            self.client.loop_stop()
        return self.terminals

    def _waves(self) -> Iterable[list[str]]:
        """The terminals to offer to, in waves: online ones first."""
        waiting = [d for d in self.terminals if self.terminals[d].result != "ok"]
        order = sorted(waiting, key=lambda d: (self.terminals[d].online is not True, d))
        size = self.wave or len(order)
        if order:
            yield order[:size]
            if order[size:]:
                yield order[size:]

    def _offer(self, devices: list[str]) -> None:
        """Withdraw any offer first: an image offered afresh is taken again by a terminal
        that rolled back from it (a retained offer coming again at a reconnect is not)."""
        qos, retain, _ = contract.DEVICE_TOPICS["update"]
        for device in devices:
            message = offer(device, len(self.image), self.sha256, self.kind)
            self.client.publish(self.topic(device, "update"), b"", qos, retain)
            topic = self.topic(device, "update")
            info = self.client.publish(topic, json.dumps(message), qos, retain)
            info.wait_for_publish(10)
            with self._changed:
                terminal = self.terminals[device]
                terminal.offered, terminal.result = True, None
                terminal.offered_at, terminal.done_at = time.monotonic(), None
            log.info("offered %s %s to %s", self.kind, self.sha256[:12], device)

    def _wait(self, devices: list[str], deadline: float) -> bool:
        """Until every one of `devices` has an outcome; False at the deadline."""
        with self._changed:
            return self._changed.wait_for(
                lambda: all(self.terminals[d].result in FINAL for d in devices),
                max(0.0, deadline - time.monotonic()),
            )

    # --- what the broker brings ---

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        client.subscribe(self.topic("+", "state"), qos=1)
        client.subscribe(self.topic("+", "fetch"), qos=0)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device, _, kind = msg.topic[len(self.topic("", "")) - 1 :].partition("/")
        try:
            message = json.loads(msg.payload)
        except (ValueError, RecursionError):  # a terminal's account sends what it likes
            log.warning("%s from %s is not JSON", kind, device)
            return
        if kind == "fetch":
            self._serve(client, device, message)
        elif kind == "state" and isinstance(message, dict):
            self._on_state(device, message)

    def _serve(self, client: mqtt.Client, device: str, fetch: Any) -> None:
        """The chunks a terminal asks for, from the offset it names; an empty one past the
        end. Only to a terminal offered this image."""
        problem = fetch_problem(fetch)
        terminal = self.terminals.get(device)
        if problem or terminal is None or not terminal.offered:
            log.warning("fetch from %s not served: %s", device, problem or "not offered")
            return
        if fetch["sha256"] != self.sha256:
            return  # another rollout's
        qos, retain, _ = contract.DEVICE_TOPICS["chunk"]
        for n in range(fetch["count"]):
            offset = fetch["offset"] + n * update.CHUNK_BYTES
            if offset > len(self.image):
                break
            data = self.image[offset : offset + update.CHUNK_BYTES]
            payload = chunk(self.sha256, offset, data)
            client.publish(self.topic(device, "chunk"), payload, qos, retain)
            self.chunks_sent += 1
            if not data:
                break

    def _on_state(self, device: str, state: dict[str, Any]) -> None:
        """A terminal's retained state: its image and its update's outcome. The offer to one
        that confirmed is withdrawn: a terminal with none imports no updater at boot."""
        with self._changed:
            self._seen[device] = state
            terminal = self.terminals.get(device)
            if terminal is None:
                return
            before = terminal.result
            self._update(terminal, state)
            self._changed.notify_all()
        if terminal.result == "ok" and before != "ok":
            qos, retain, _ = contract.DEVICE_TOPICS["update"]
            self.client.publish(self.topic(device, "update"), b"", qos, retain)

    def _terminal(self, device: str) -> Terminal:
        terminal = Terminal(device)
        self._update(terminal, self._seen[device])
        return terminal

    def _update(self, terminal: Terminal, state: dict[str, Any]) -> None:
        terminal.online = state.get("online") is True
        if state.get("fw") is not None:
            terminal.fw = str(state["fw"])
        report = state.get("update")
        if terminal.offered and isinstance(report, dict) and report.get("sha256") == self.sha256:
            terminal.result = str(report.get("result"))
            terminal.why = report.get("why")
            if terminal.result in FINAL and terminal.done_at is None:
                terminal.done_at = time.monotonic()


def table(terminals: dict[str, Terminal]) -> str:
    """What each terminal did, a line each."""
    lines = []
    for device, t in sorted(terminals.items()):
        outcome = t.result or ("no answer" if t.offered else "not offered")
        why = f" ({t.why})" if t.why else ""
        took = ""
        if t.offered_at is not None and t.done_at is not None:
            took = f"\tin {t.done_at - t.offered_at:.1f} s"
        lines.append(f"{device}\t{outcome}{why}\tfw {t.fw or '?'}{took}")
    return "\n".join(lines)


def settings_offered(path: Path) -> tuple[str, str, bytes]:
    """(site, device, what to offer) of a terminal's settings file (svc-broker add-device
    --replace wrote it): the broker's settings in it, which a terminal takes over the air."""
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SettingsError(f"{path}: not a terminal's settings file ({e})") from None
    if not isinstance(values, dict) or not all(
        contract.valid_name(key, values.get(key)) for key in ("site", "device")
    ):
        raise SettingsError(f"{path}: no site and device (svc-broker add-device writes them)")
    offered = {key: values[key] for key in firmware_module("settings").OFFERED if key in values}
    if "broker_password" not in offered:
        raise SettingsError(f"{path}: no broker account (svc-broker add-device --replace)")
    blob = json.dumps(offered, separators=(",", ":")).encode()
    if len(blob) > update.SETTINGS_MAX:
        raise SettingsError(f"{path}: {len(blob)} bytes of settings, at most {update.SETTINGS_MAX}")
    return values["site"], values["device"], blob
