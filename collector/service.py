"""The MQTT side: take messages, check them in batches, hand them to storage, acknowledge.

One thread reads the broker (paho's loop, driven here rather than in paho's own thread),
checks what it took and sends the PUBACKs, in the order received, once the storage thread
(storage.py) reports a batch stored. Checking and reading share the interpreter's lock, so
keeping them in one thread spares the hand-offs that cost more than the work; the storage
thread mostly waits on InfluxDB. A crash at any instant leaves every unstored message with
the broker, since nothing is acknowledged before it is stored.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector import rating as rating_msg
from collector.alerts import AlertRules, DeviceAlerts, DeviceRule, TrendRule
from collector.batch import Ack, Batch, Checker, Delivery
from collector.deadletter import DeadLetters
from collector.influx import InfluxHttp
from collector.known import KnownDevices
from collector.metrics import Metrics
from collector.settings import Settings
from collector.spool import Spool
from collector.storage import Storage
from collector.suspect import SuspectJudge
from firmware import contract

log = structlog.get_logger("collector")

LOOP_S = 0.01  # longest wait for the broker before batches and acknowledgements are seen to
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
KEEPALIVE_S = 30
FLUSH_RETRY_S = 1.0  # while the disk refuses the dead letters, they are tried this often
SESSION_NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5: the broker keeps the session while we are away


class Collector:
    def __init__(
        self, settings: Settings, writer: InfluxHttp, dead: DeadLetters, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.dead = dead
        self.metrics = metrics
        self._stop = threading.Event()
        self.storage = Storage(
            writer,
            Spool(settings.state_dir / "spool", settings.spool_bytes),
            dead,
            metrics,
            self._stop,
            drain_batch=settings.batch_max,
        )
        known = KnownDevices(settings.known_devices) if settings.known_devices else None
        self.checker = Checker(settings.topic_root, SuspectJudge(), dead, metrics, known)
        self.alerts = AlertRules(
            TrendRule(settings.trend_window_s, settings.trend_min, settings.trend_share)
        )
        self.device_alerts = DeviceAlerts(
            DeviceRule(settings.offline_alert_s, settings.queue_alert)
        )
        self._taken: list[Delivery] = []
        self._held: deque[Batch] = deque()  # stored; acknowledged once their dead letters are
        self._flush_at = 0.0  # on disk, tried again from then while the disk refuses them
        self._held_messages = 0
        self._first_taken = 0.0  # when the oldest message in _taken came (monotonic)
        self._connection = 0
        self._reconnect_at = 0.0
        self._reconnect_delay = RECONNECT_MIN_S
        self._next_due_check = 0.0
        metrics.pending.set_function(
            lambda: len(self._taken) + self.storage.waiting + self._held_messages
        )
        # MQTT 5 for one thing 3.1.1 cannot do: "retain as published" shows which ratings a
        # device published retained, live ones too (3.1.1 clears the flag on the way out)
        self.client = settings.mqtt.client(settings.client_id, settings.mqtt_ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def filters(self) -> list[tuple[str, SubscribeOptions]]:
        root = own = self.settings.topic_root
        if self.settings.share_group:  # several collectors share the load, each message to one
            root = f"$share/{self.settings.share_group}/{root}"
        # the logins (the clerks' names) on a subscription of its own: a shared one is given
        # no retained message, and a new collector must learn who is logged in now. Not
        # "retain as published": a config then comes with retain 1 only as a retained copy
        # handed over at a subscribe (each start and reconnect), never news of a login now
        # (clerk.py), with retain 0 when published, retained or not, while subscribed
        return [
            (
                f"{prefix}/+/+/{kind}",
                SubscribeOptions(qos=contract.DEVICE_TOPICS[kind][0], retainAsPublished=published),
            )
            for prefix, kind, published in (
                (root, "rating", True),
                (root, "state", True),
                (root, "telemetry", True),
                (own, "config", False),
            )
        ]

    @property
    def stored(self) -> int:
        return self.storage.stored_points

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Serve until stop(); then store what was taken, acknowledge it and disconnect. The
        database is made, if missing, by the storage thread before its first write: while
        InfluxDB is down, at start as later, batches go to the spool."""
        self.storage.make_database(once=True)  # at once, if InfluxDB answers, for its readers
        self.storage.start()
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        self.client.connect_async(
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            KEEPALIVE_S,
            clean_start=False,  # a persistent session, from the first connection on
            properties=session,
        )
        try:
            while not self._stop.is_set():
                self._network()
                if self._taken and self._batch_ready():
                    self._hand_over()
                self._acknowledge_stored()
                self._raise_due_alerts()
            self._finish()
        finally:
            self.client.disconnect()
            log.info("stopped", stored=self.stored, rejected=self.metrics.rejected_total())

    def _batch_ready(self) -> bool:
        """Group commit: a batch goes as soon as the store is free (after the linger, if one
        is set), or once it is full. While a write is in flight, messages gather, so batches
        grow with the load and a lone rating waits for nothing but its own write."""
        if len(self._taken) >= self.settings.batch_max:
            return True
        lingered = time.monotonic() - self._first_taken >= self.settings.batch_linger_s
        return lingered and self.storage.waiting == 0

    @property
    def failed(self) -> bool:
        return self.storage.failed

    def _raise_due_alerts(self) -> None:
        """Offline alerts, looked for once a second."""
        now = time.monotonic()
        if now >= self._next_due_check:
            self._next_due_check = now + 1.0
            for alert in self.device_alerts.due(time.time_ns() // 1_000_000):
                self._publish_alerts(alert["site"], [alert])

    def _network(self) -> None:
        """Read and write what the broker link has ready; reconnect, backing off, when down."""
        if self.client.loop(timeout=LOOP_S) == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        now = time.monotonic()
        if now < self._reconnect_at:
            self._stop.wait(min(LOOP_S, self._reconnect_at - now))
            return
        self._reconnect_at = now + self._reconnect_delay
        self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_MAX_S)
        try:
            self.client.reconnect()
        except OSError as e:
            log.warning("mqtt_unreachable", error=str(e), retry_in_s=self._reconnect_at - now)

    def _finish(self) -> None:
        """After stop: store and acknowledge what was taken, nothing newer."""
        if self._taken:
            self._hand_over()
        self.storage.finish()
        while self.storage.is_alive():
            self.storage.join(LOOP_S)
            self._acknowledge_stored()
            self.client.loop_misc()  # keep-alive while the last batches are written
        self._flush_at = 0.0  # a last try, however recent the one before
        self._acknowledge_stored()

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("mqtt_refused", reason=str(reason))
            return
        self._connection += 1
        self._reconnect_delay = RECONNECT_MIN_S
        sock = client.socket()
        if isinstance(sock, socket.socket):  # an ack goes right after its PUBACK: no Nagle wait
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("mqtt_connected", session_present=flags.session_present)
        client.subscribe(self.filters)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        filters = [f for f, _ in self.filters]
        if failed:
            log.error("subscribe_refused", filters=filters, reasons=failed)
        else:
            log.info("subscribed", filters=filters)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._stop.is_set():  # our own disconnect, at a normal stop
            log.info("mqtt_disconnected", reason=str(reason))
        else:
            log.warning("mqtt_disconnected", reason=str(reason))

    def health(self) -> dict[str, bool]:
        return {"broker": self.client.is_connected(), "influx": self.writer.ping()}

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._stop.is_set():
            return  # not taken, never acknowledged: the broker sends it again
        if not self._taken:
            self._first_taken = time.monotonic()
        self._taken.append(
            Delivery(
                msg.topic,
                bytes(msg.payload),
                msg.mid,
                msg.qos,
                msg.dup,
                self._connection,
                time.time_ns(),
                msg.retain,
            )
        )

    def _hand_over(self) -> None:
        """Check the messages taken and hand the batch to storage."""
        deliveries, self._taken = self._taken, []
        self.metrics.taken([d.topic for d in deliveries], sum(d.dup for d in deliveries))
        self.storage.submit(self.checker.batch(deliveries))

    def _acknowledge_stored(self) -> None:
        """Acknowledge the batches storage is done with, in order, once the dead letters so
        far are on disk (held while the disk refuses them); then raise their alerts."""
        while not self.storage.done.empty():
            batch = self.storage.done.get()
            if batch.stored:  # else stopped before it could be stored: the broker sends it again
                self._held.append(batch)
                self._held_messages += len(batch.deliveries)
        now = time.monotonic()
        if now < self._flush_at:
            return
        if not self.dead.flush():
            self._flush_at = now + FLUSH_RETRY_S
            return
        while self._held:
            batch = self._held.popleft()
            self._held_messages -= len(batch.deliveries)
            self._acknowledge(batch.deliveries)
            self._send_acks(batch.acks)
            for item in batch.reports:
                if isinstance(item, rating_msg.Rating):
                    self._publish_alerts(item.site, self.alerts.on_rating(item))
                else:
                    self._publish_alerts(item.where.site, self.device_alerts.on_report(item))

    def _publish_alerts(self, site: str, alerts: list[dict[str, Any]]) -> None:
        """Publish alerts, only ever of what is stored: a manager hears of nothing else."""
        for alert in alerts:
            topic = contract.site_topic(self.settings.topic_root, site, "alert")
            qos = contract.SITE_TOPICS["alert"][0]
            self.client.publish(topic, json.dumps(alert, ensure_ascii=False), qos=qos)
            self.metrics.alerts.labels(alert["kind"]).inc()
            log.info("alert", **alert)

    def _send_acks(self, acks: list[Ack]) -> None:
        """Tell each terminal which of its ratings are stored, on its ack topic (QoS 1, so a
        terminal offline now gets them when it is back, from its persistent session)."""
        by_device: dict[tuple[str, str], list[int]] = {}
        for ack in acks:
            by_device.setdefault((ack.site, ack.device), []).append(ack.seq)
        root = self.settings.topic_root
        qos = contract.DEVICE_TOPICS["ack"][0]
        for (site, terminal), seqs in by_device.items():
            topic = contract.topic(root, site, terminal, "ack")
            for start in range(0, len(seqs), contract.ACK_MAX_SEQS):
                message = contract.ack(seqs[start : start + contract.ACK_MAX_SEQS])
                self.client.publish(topic, orjson.dumps(message), qos=qos)
        self.metrics.acks.inc(len(acks))

    def _acknowledge(self, batch: list[Delivery]) -> None:
        # A PUBACK from an earlier connection would name a packet id the broker
        # has since reused; those messages come again and are stored again, harmlessly.
        for delivery in batch:
            if delivery.qos and delivery.connection == self._connection:
                self.client.ack(delivery.mid, delivery.qos)
