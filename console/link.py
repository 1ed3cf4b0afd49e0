"""The console's link to the hall's broker, under its `console` account (broker/acl.py).

It reads every terminal's retained `state` and `config` (who each terminal really has now,
whoever set it) and each hall's `alert`; it publishes a terminal's retained `config` (a clerk
logged in or out) and `prompt` (a rating window opened by the queue system or a test).

The session is persistent (MQTT 5, never expiring, as the collector's): alerts published
while the console is down wait at the broker. An alert is acknowledged (PUBACK) only after
its handler returned, so one that a crash interrupted comes again; the handler is idempotent
(one case per rating). A message that is not what the contract says is logged with its
reason, counted, acknowledged and let go: it never takes the link down.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from console.settings import Settings
from firmware import contract
from fwtools.unix_port import firmware_module

log = structlog.get_logger("console")

KEEPALIVE_S = 30
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
PUBLISH_WAIT_S = 5.0
PROMPT_EXPIRY_S = 30  # a prompt the broker could not deliver in this long is dropped
RECONNECT_MAX_S = 30
FW_MAX = 32
UPDATE_RESULTS = firmware_module("update").UPDATE_RESULTS  # a terminal's last update
STUCK_MAX = 16

AlertHandler = Callable[[str, dict[str, Any]], None]
ConfigHandler = Callable[[str, str, dict[str, Any]], None]


class LinkError(RuntimeError):
    """The broker did not take a message: the link is down, and nothing was sent."""


class Unconfirmed(LinkError):
    """Sent, but the broker did not confirm it in time: it may still take effect."""


@dataclass(frozen=True)
class Terminal:
    """What the broker holds for one terminal: its retained state and config (None: none)."""

    site: str
    device: str
    state: dict[str, Any] | None
    config: dict[str, Any] | None

    @property
    def online(self) -> bool:
        return bool(self.state and self.state.get("online"))

    @property
    def staff(self) -> str | None:
        """Who the terminal has now: the state it published after taking its config (the
        contract's extension), or the retained config while the state does not say."""
        for held in (self.state, self.config):
            if held and "staff" in held:
                staff = held["staff"]
                return staff if isinstance(staff, str) else None
        return None


class HallLink:
    def __init__(
        self, settings: Settings, on_alert: AlertHandler, on_config: ConfigHandler
    ) -> None:
        self.root = settings.topic_root
        self.on_alert = on_alert
        self.on_config = on_config
        self._own_configs: dict[tuple[str, str], bytes] = {}  # the last one published here
        self.rejected: Counter[str] = Counter()
        self._stopping = False
        self._held: dict[tuple[str, str], dict[str, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._publishing = threading.Lock()  # connected-then-publish, as one step
        self.client = settings.mqtt.client(settings.client_id, settings.mqtt_ca_file)
        self.client.reconnect_delay_set(1, RECONNECT_MAX_S)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._address = (settings.mqtt.host, settings.mqtt.port)

    def start(self) -> None:
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        self.client.connect_async(
            *self._address, KEEPALIVE_S, clean_start=False, properties=session
        )
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def terminals(self, site: str) -> dict[str, Terminal]:
        """Every terminal of the hall the broker has told of, by device."""
        with self._lock:
            return {
                device: Terminal(site, device, held.get("state"), held.get("config"))
                for (s, device), held in self._held.items()
                if s == site
            }

    def online(self, site: str, device: str) -> bool:
        """Whether the terminal's retained state says it is online now."""
        with self._lock:
            state = self._held.get((site, device), {}).get("state")
        return bool(state and state.get("online") is True)

    def publish_config(self, site: str, device: str, config: dict[str, Any]) -> None:
        """The terminal's retained config, waited for until the broker has it."""
        self._publish(site, device, "config", {"v": contract.VERSION, **config})

    def publish_prompt(self, site: str, device: str, ticket: str | None) -> None:
        prompt: dict[str, Any] = {"v": contract.VERSION}
        if ticket is not None:
            prompt["ticket"] = ticket
        self._publish(site, device, "prompt", prompt)

    def _publish(self, site: str, device: str, kind: str, payload: dict[str, Any]) -> None:
        """Publish, and wait for the broker's PUBACK. While the link is down nothing is sent
        (paho would keep the message and send it on reconnecting, a login or a prompt long
        after the page said it was not made). A prompt expires at the broker after
        PROMPT_EXPIRY_S: a window never opens for a customer long gone."""
        qos, retain, _ = contract.DEVICE_TOPICS[kind]
        topic = contract.topic(self.root, site, device, kind)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        properties = None
        if kind == "prompt":
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = PROMPT_EXPIRY_S
        with self._publishing:
            if not self.client.is_connected():
                raise LinkError("the broker link is down")
            if kind == "config":
                with self._lock:
                    self._own_configs[(site, device)] = body
            info = self.client.publish(topic, body, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Unconfirmed(
                f"the broker link went down as it was sent ({mqtt.error_string(info.rc)})"
            )
        try:
            info.wait_for_publish(PUBLISH_WAIT_S)
        except RuntimeError as e:  # paho: the link went down; it sends it again on reconnecting
            raise Unconfirmed(str(e)) from None
        if not info.is_published():
            raise Unconfirmed(
                f"the broker did not confirm the {kind} within {PUBLISH_WAIT_S:.0f} s"
            )
        log.info("published", kind=kind, site=site, device=device)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("mqtt_refused", reason=str(reason))
            return
        log.info("mqtt_connected", session_present=flags.session_present)
        client.subscribe(
            [
                (f"{self.root}/+/+/state", SubscribeOptions(qos=1)),
                (f"{self.root}/+/+/config", SubscribeOptions(qos=1)),
                (f"{self.root}/+/alert", SubscribeOptions(qos=1)),
            ]
        )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        (log.info if self._stopping else log.warning)("mqtt_disconnected", reason=str(reason))

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._take(msg)
        except sqlite3.OperationalError:  # the database busy: not acknowledged, sent again
            log.exception("message_failed", topic=msg.topic)
            return
        except Exception:  # a message no handler can take: logged, counted and let go, or it
            log.exception("message_failed", topic=msg.topic)  # would come at every reconnect
            self.rejected["failed"] += 1
        client.ack(msg.mid, msg.qos)

    def _take(self, msg: mqtt.MQTTMessage) -> None:
        levels = msg.topic[len(self.root) + 1 :].split("/")
        if len(levels) == 2 and levels[1] == "alert":
            if not contract.valid_name("site", levels[0]):
                self._reject(msg, "alert", "its site breaks the contract's name rule")
                return
            alert = self._payload(msg, "alert")
            if alert is not None:
                self.on_alert(levels[0], alert)
            return
        if len(levels) != 3 or levels[2] not in ("state", "config"):
            self._reject(msg, "topic", "not a topic the console reads")
            return
        site, device, kind = levels
        if not (contract.valid_name("site", site) and contract.valid_name("device", device)):
            self._reject(msg, "name", "site or device breaks the contract's name rule")
            return
        held = self._payload(msg, kind) if msg.payload else None  # empty: retained one cleared
        if msg.payload and held is None:
            return
        if held is not None:
            held = _known_fields(held)
        with self._lock:
            self._held.setdefault((site, device), {})[kind] = held
            own = self._own_configs.get((site, device)) == bytes(msg.payload)
        if kind == "config" and held is not None and "staff" in held and not own:
            self.on_config(site, device, held)

    def _payload(self, msg: mqtt.MQTTMessage, kind: str) -> dict[str, Any] | None:
        if len(msg.payload) > contract.MAX_PAYLOAD_BYTES:
            self._reject(msg, kind, "longer than the contract's largest message")
            return None
        try:
            payload = json.loads(msg.payload)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            self._reject(msg, kind, f"not JSON: {e}")
            return None
        if not isinstance(payload, dict) or payload.get("v") != contract.VERSION:
            self._reject(msg, kind, f"not a version {contract.VERSION} JSON object")
            return None
        return payload

    def _reject(self, msg: mqtt.MQTTMessage, kind: str, why: str) -> None:
        self.rejected[kind] += 1
        log.warning("message_ignored", topic=msg.topic, kind=kind, reason=why)


def _known_fields(held: dict[str, Any]) -> dict[str, Any]:
    """What the pages read of a terminal's state or config, each field only with the type
    the contract gives it (a terminal's own retained message is not to be trusted blindly)."""
    checks = {
        "online": lambda v: isinstance(v, bool),
        "fw": lambda v: isinstance(v, str) and len(v) <= FW_MAX and v.isprintable(),
        "counter": lambda v: v is None or contract.valid_name("counter", v),
        "staff": lambda v: v is None or contract.valid_name("staff", v),
        "staff_name": lambda v: v is None or (
            isinstance(v, str) and len(v) <= contract.STAFF_NAME_MAX and v.isprintable()
        ),
        "stuck_keys": lambda v: isinstance(v, list) and len(v) <= STUCK_MAX
        and all(type(k) is int for k in v),
        "update": lambda v: isinstance(v, dict) and v.get("result") in UPDATE_RESULTS,
    }  # fmt: skip
    return {k: v for k, v in held.items() if k in checks and checks[k](v)}
