"""The MQTT side: subscribe, batch, store, then acknowledge in the order received.

paho runs the network in its own thread and hands each message to on_message,
which only queues it. The main thread takes batches off that queue, writes them
to InfluxDB (or the dead-letter file), and only then sends the PUBACKs, so a
crash at any instant leaves every unstored message with the broker.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from collector import device, topics
from collector import rating as rating_msg
from collector.alerts import AlertRules, DeviceAlerts, DeviceRule, TrendRule
from collector.checks import Rejected
from collector.deadletter import DeadLetters
from collector.influx import InfluxError, InfluxWriter
from collector.metrics import Metrics
from collector.settings import Settings
from collector.spool import Spool
from collector.suspect import SuspectJudge

log = structlog.get_logger("collector")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


class _Stopped(Exception):
    """stop() came while InfluxDB was unreachable, before the batch could be stored."""


class Delivery(NamedTuple):
    """One message as paho handed it over (a tuple: one is built per message, in paho's thread)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    connection: int
    received_ns: int

    @property
    def received_ms(self) -> int:
        return self.received_ns // 1_000_000


class Collector:
    def __init__(
        self, settings: Settings, writer: InfluxWriter, dead: DeadLetters, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.dead = dead
        self.metrics = metrics
        self.spool = Spool(settings.state_dir / "spool", settings.spool_bytes)
        self._next_drain = 0.0
        self.judge = SuspectJudge()
        self.alerts = AlertRules(
            TrendRule(settings.trend_window_s, settings.trend_min, settings.trend_share)
        )
        self.device_alerts = DeviceAlerts(
            DeviceRule(settings.offline_alert_s, settings.queue_alert)
        )
        self.inbox: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self._in_hand = 0  # messages taken off the inbox, not yet stored and acknowledged
        metrics.pending.set_function(lambda: self.inbox.qsize() + self._in_hand)
        self.stored = 0
        self._connection = 0
        self._stop = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        if settings.mqtt.username:
            self.client.username_pw_set(settings.mqtt.username, settings.mqtt.password)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def filters(self) -> list[tuple[str, int]]:
        root = self.settings.topic_root
        if self.settings.share_group:  # several collectors share the load, each message to one
            root = f"$share/{self.settings.share_group}/{root}"
        return [(f"{root}/+/+/rating", 1), (f"{root}/+/+/state", 1), (f"{root}/+/+/telemetry", 0)]

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Serve until stop(); then store what was taken, acknowledge it and disconnect."""
        if not self._ensure_database():
            return
        self.client.connect_async(self.settings.mqtt.host, self.settings.mqtt.port, keepalive=30)
        self.client.loop_start()
        try:
            while not self._stop.is_set():
                batch = self._take_batch()
                if batch:
                    self._store(batch)
                elif len(self.spool) and time.monotonic() >= self._next_drain:
                    self._drain_quietly()
                for alert in self.device_alerts.due(time.time_ns() // 1_000_000):
                    self._publish_alerts(alert["site"], [alert])
            self._drain()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            log.info("stopped", stored=self.stored, rejected=self.metrics.rejected_total())

    def _drain_quietly(self) -> None:
        """With no new messages, write the spool when InfluxDB is back; try again in a while."""
        try:
            self._drain_spool()
        except InfluxError:
            self._next_drain = time.monotonic() + RETRY_MAX_S / 2

    def _ensure_database(self) -> bool:
        return self._retrying(self.writer.ensure_database, "influx_unavailable")

    def _retrying(self, action: Callable[[], None], event: str) -> bool:
        """Call action until it succeeds (True) or stop() is called first (False).

        A permanent InfluxError is raised to the caller: retrying cannot help it.
        """
        delay = RETRY_MIN_S
        while True:
            try:
                action()
                return True
            except InfluxError as e:
                if e.permanent:
                    raise
                log.warning(event, error=str(e), retry_in_s=delay)
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)

    def _drain(self) -> None:
        """After stop: what was already queued is stored and acknowledged, nothing newer."""
        pending: list[Delivery] = []
        while True:
            try:
                pending.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        if pending:
            self._store(pending)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("mqtt_refused", reason=str(reason))
            return
        self._connection += 1
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
        log.warning("mqtt_disconnected", reason=str(reason))

    def health(self) -> dict[str, bool]:
        return {"broker": self.client.is_connected(), "influx": self.writer.ping()}

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # paho's thread reads the socket for every message; the least is done here, the
        # counting and checking in the main thread, batch by batch.
        self.inbox.put(
            Delivery(
                msg.topic,
                bytes(msg.payload),
                msg.mid,
                msg.qos,
                msg.dup,
                self._connection,
                time.time_ns(),
            )
        )

    def _take_batch(self) -> list[Delivery]:
        try:
            batch = [self.inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.batch_linger_s
        while len(batch) < self.settings.batch_max:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[Delivery]) -> None:
        self._in_hand = len(batch)
        self.metrics.taken([d.topic for d in batch], sum(d.dup for d in batch))
        try:
            self._store_batch(batch)
        finally:
            self._in_hand = 0

    def _store_batch(self, batch: list[Delivery]) -> None:
        points: list[tuple[Delivery, str]] = []
        stored: list[rating_msg.Rating | device.DeviceReport] = []
        undated: dict[tuple[str, str, int], int] = {}
        try:
            for delivery in batch:
                point = self._point(delivery, undated, stored)
                if point is not None:
                    points.append((delivery, point))
        except _Stopped:
            return  # nothing acknowledged: the broker sends the batch again
        if self._write_all(points):
            self._acknowledge(batch)
            for item in stored:
                if isinstance(item, rating_msg.Rating):
                    self._publish_alerts(item.site, self.alerts.on_rating(item))
                else:
                    self._publish_alerts(item.where.site, self.device_alerts.on_report(item))

    def _point(
        self,
        delivery: Delivery,
        undated: dict[tuple[str, str, int], int],
        stored: list[rating_msg.Rating | device.DeviceReport],
    ) -> str | None:
        """The message's line, or None after it went to the dead-letter file."""
        try:
            where = topics.parse(delivery.topic, self.settings.topic_root)
            if where.kind == "rating":
                parsed = rating_msg.parse(where, delivery.payload)
                when = None
                if parsed.ts is None:
                    when = self._undated_time(parsed, delivery.received_ms, undated)
                why = self.judge.judge(parsed)
                if why:
                    self.metrics.suspect.labels(why).inc()
                stored.append(parsed)
                return parsed.point(delivery.received_ms, when, why)
            if where.kind in ("telemetry", "state"):
                read = device.telemetry if where.kind == "telemetry" else device.state
                report = read(where, delivery.payload, delivery.received_ns)
                if report is None:
                    return None
                stored.append(report)
                return report.point()
            raise topics.TopicError(f"no {where.kind!r} messages are taken")
        except topics.TopicError as e:
            self._reject(delivery, "bad_topic", str(e))
        except Rejected as e:
            self._reject(delivery, e.kind, str(e))
        except InfluxError as e:  # the undated look-up was refused: a fault, kept aside
            self._reject(delivery, "refused_by_influx", str(e))
        except _Stopped:
            raise
        except Exception as e:  # a bug of ours must not stop the service or lose the message
            log.exception("check_failed", topic=delivery.topic[:200])
            self._reject(delivery, "internal_error", f"{type(e).__name__}: {e}")
        return None

    def _undated_time(
        self, parsed: rating_msg.Rating, received_ms: int, seen: dict[tuple[str, str, int], int]
    ) -> int:
        """The time a rating without ts was first stored at, so that a replay overwrites it.

        InfluxDB is asked (it outlives this process and is shared by every collector);
        `seen` covers copies within one batch, not yet written.
        """
        key = (parsed.site, parsed.device, parsed.seq)
        if key not in seen:
            found: list[dict[str, Any]] = []
            q = (
                f'SELECT "seq" FROM rating WHERE "site"=\'{parsed.site}\' '
                f'AND "device"=\'{parsed.device}\' AND "seq"={parsed.seq} AND "undated"=1'
            )
            if not self._retrying(
                lambda: found.extend(self.writer.query(q)), "influx_query_failed"
            ):
                raise _Stopped
            seen[key] = int(found[0]["time"]) if found else parsed.undated_time_ns(received_ms)
        return seen[key]

    def _reject(self, delivery: Delivery, kind: str, reason: str) -> None:
        self.metrics.rejected.labels(kind).inc()
        log.warning("rejected", topic=delivery.topic[:200], kind=kind, reason=reason)
        self.dead.record(delivery.topic, delivery.payload, reason, kind)

    def _write_all(self, points: list[tuple[Delivery, str]]) -> bool:
        """Store the batch: in InfluxDB after what the spool holds, or else in the spool.

        False only when stop() came while InfluxDB was down and the spool full.
        """
        lines = [p for _, p in points]
        if not lines:  # all dead-lettered: nothing to write, nothing to keep in order
            return True
        delay = RETRY_MIN_S
        while True:
            try:
                self._drain_spool()
                self._write(lines)
                return True
            except InfluxError as e:
                if e.permanent:
                    return self._write_one_by_one(points)
                if self.spool.append(lines):
                    self.metrics.spool_bytes.set(self.spool.bytes)
                    log.warning(
                        "spooled", points=len(lines), error=str(e), spool_bytes=self.spool.bytes
                    )
                    return True
                log.warning("spool_full", error=str(e), retry_in_s=delay)
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)

    def _drain_spool(self) -> None:
        """Write the spooled batches, oldest first; raises InfluxError while InfluxDB is down."""
        while (oldest := self.spool.oldest()) is not None:
            path, lines = oldest
            try:
                self._write(lines)
            except InfluxError as e:
                if not e.permanent:
                    raise
                self._write_spooled_one_by_one(lines)
            self.spool.remove(path)
            self.metrics.spool_bytes.set(self.spool.bytes)
            log.info("spool_written", points=len(lines), spool_bytes=self.spool.bytes)

    def _write_spooled_one_by_one(self, lines: list[str]) -> None:
        for line in lines:
            try:
                self._write([line])
            except InfluxError as e:
                if not e.permanent:
                    raise
                self.metrics.rejected.labels("refused_by_influx").inc()
                self.dead.record("(spool)", line.encode(), str(e), "refused_by_influx")

    def _write(self, lines: list[str]) -> None:
        """One write request, timed and counted once InfluxDB has taken it."""
        started = time.perf_counter()
        self.writer.write(lines)
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self.stored += len(lines)
        self.metrics.stored_lines(lines)

    def _write_one_by_one(self, points: list[tuple[Delivery, str]]) -> bool:
        """InfluxDB refused the batch: set aside the points it refuses, write the rest."""
        for delivery, point in points:
            try:
                if not self._retrying(partial(self._write, [point]), "influx_write_failed"):
                    return False
            except InfluxError as e:
                self._reject(delivery, "refused_by_influx", str(e))
        return True

    def _publish_alerts(self, site: str, alerts: list[dict[str, Any]]) -> None:
        """Publish alerts, only ever of what is stored: a manager hears of nothing else."""
        for alert in alerts:
            topic = f"{self.settings.topic_root}/{site}/alert"
            self.client.publish(topic, json.dumps(alert, ensure_ascii=False), qos=1)
            self.metrics.alerts.labels(alert["kind"]).inc()
            log.info("alert", **alert)

    def _acknowledge(self, batch: list[Delivery]) -> None:
        # A PUBACK from an earlier connection would name a packet id the broker
        # has since reused; those messages come again and are stored again, harmlessly.
        for delivery in batch:
            if delivery.qos and delivery.connection == self._connection:
                self.client.ack(delivery.mid, delivery.qos)
