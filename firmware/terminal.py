# The rating terminal: keys and prompts go through the rating flow; every
# rating is written to the flash outbox before the customer is thanked, and
# leaves it only after the broker's PUBACK. The MQTT link, telemetry, config,
# the clock and the watchdog run beside it as asyncio tasks.
import asyncio
import gc
import json
import random

import outbox
import protocol
from config import ConfigError
from flow import RatingFlow
from keys import KeyScanner
from mqtt import MQTTClient
from ticks import ticks_diff, ticks_ms

SCAN_MS = 10
BACKOFF_MIN_S = 1
PUBACK_TIMEOUT_S = 10
TIME_RESYNC_S = 6 * 3600
TIME_RETRY_S = 30
TIME_WAIT_MS = 300 * 1000  # unstamped ratings of this boot wait this long for the clock
WATCHDOG_MS = 8000
HEALTHY_BEAT_MS = 2000

SOUNDS = {"window": "prompt", "reason": "reason", "thanks": "thanks", "error": "error"}


class Terminal:
    def __init__(self, board, settings, config, counters, box):
        self.board = board
        self.settings = settings
        self.config = config
        self.counters = counters
        self.outbox = box
        self.flow = RatingFlow(config, ticks_ms())
        self.started = ticks_ms()
        self.connected = False
        self.stuck = []
        self._beat = ticks_ms()
        self._crashed = None
        self._wake = asyncio.Event()
        self._acked = asyncio.Event()
        self._report_now = asyncio.Event()
        self._inflight_pid = None
        self._dropped = False
        self._backoff = BACKOFF_MIN_S
        root, site, device = settings["topic_root"], settings["site"], settings["device"]
        self.topics = {
            kind: protocol.topic(root, site, device, kind)
            for kind in ("rating", "state", "telemetry", "config", "prompt")
        }
        # One client for the terminal's life: its packet ids keep counting across
        # reconnects, so a resent rating never shares an id with a new one.
        host, port, user, password = settings["broker_addr"]
        self.client = MQTTClient(device, host, port, user, password, settings["keepalive_s"])
        will = protocol.encode(protocol.state(False))
        self.client.set_last_will(self.topics["state"], will, True, 1)
        self.client.on_puback = self._on_puback
        self.client.on_message = self._on_message

    # --- running ---

    async def run(self):
        self.board.start()
        self.board.show("offline")
        tasks = (
            ("keys", self._scan_keys()),
            ("link", self._keep_linked()),
            ("clock", self._keep_time()),
        )
        for name, coro in tasks:
            asyncio.create_task(self._guarded(name, coro))
        await self._supervise()

    async def _guarded(self, name, coro):
        try:
            await coro
        except Exception as e:
            self._crashed = "%s: %r" % (name, e)

    async def _supervise(self):
        """Feed the watchdog only while every task runs and the key scan keeps beating."""
        self.board.wdt_start(WATCHDOG_MS)
        while True:
            await asyncio.sleep_ms(500)
            if self._crashed:
                self.board.emit("crash", task=self._crashed)
                self.board.reset("task failed: " + self._crashed)
            if ticks_diff(ticks_ms(), self._beat) < HEALTHY_BEAT_MS:
                self.board.wdt_feed()

    # --- keys and the rating flow ---

    async def _scan_keys(self):
        board = self.board
        scanner = KeyScanner(board.key_count, ticks_ms(), board.read_keys())
        clerk = board.key_count - 1 if self.settings["clerk_key"] else None
        while True:
            now = ticks_ms()
            for kind, key in scanner.scan(board.read_keys(), now):
                if kind == "press":
                    if key == clerk:
                        self._handle(self.flow.prompt(now))
                    else:
                        self._handle(self.flow.press(key, now))
                else:
                    self.stuck = scanner.stuck_keys()
                    board.emit(kind, key=key)
                    self._state_changed()
            events = self.flow.tick(now)
            if events:
                self._handle(events)
            self._beat = now
            await asyncio.sleep_ms(SCAN_MS)

    def _handle(self, events):
        for event in events:
            kind = event[0]
            if kind == "rating":
                self._record(event[1])
            elif kind == "show":
                state = event[1]
                if state == "thanks" and self._dropped:
                    state = "error"
                self.board.show(state)
                if state in SOUNDS:
                    self.board.sound(SOUNDS[state])
            elif kind == "opened":
                self.counters.bump("prompts")
                self.board.emit("opened", ticket=event[1])
            elif kind == "stray":
                self.counters.bump("stray")
                self.board.emit("stray", why=event[1])

    def _record(self, outcome):
        """Queue the rating on flash; only then may the customer be thanked."""
        counters = self.counters
        counters.bump("rated" if outcome.score is not None else "skipped")
        seq = counters.next_seq()
        wall = self.board.wall_ms()
        ts = None if wall is None else wall - ticks_diff(ticks_ms(), outcome.at_ticks)
        record = outbox.encode(
            seq,
            counters.boot,
            ts,
            outcome.at_ticks,
            outcome.score,
            outcome.reason,
            outcome.mode,
            outcome.wait_ms,
            self.config["counter"],
            self.config["staff"],
            outcome.ticket,
        )
        self._dropped = not self.outbox.append(record)
        if self._dropped:
            counters.bump("dropped")
            self._state_changed()
            self.board.emit("dropped", seq=seq)
            return
        self.board.emit(
            "rated",
            seq=seq,
            boot=counters.boot,
            ts=ts,
            score=outcome.score,
            reason=outcome.reason,
            mode=outcome.mode,
            wait_ms=outcome.wait_ms,
            counter=self.config["counter"],
            staff=self.config["staff"],
            ticket=outcome.ticket,
        )
        self._wake.set()

    # --- the link to the broker ---

    async def _keep_linked(self):
        """Wi-Fi, then MQTT; on any failure reconnect with backoff and jitter."""
        while True:
            if await self._network():
                try:
                    await self._serve()
                except Exception as e:  # any failure of the link means: reconnect
                    self.board.emit("disconnected", reason=repr(e))
                finally:
                    self.connected = False
                    self.client.close()
                    self.board.show("offline")
            await asyncio.sleep(self._backoff * (0.5 + random.random()))
            self._backoff = min(self._backoff * 2, self.settings["reconnect_max_s"])

    async def _network(self):
        board = self.board
        if board.wifi_connected():
            return True
        s = self.settings
        if await board.wifi_connect(s["wifi_ssid"], s["wifi_password"]):
            board.emit("wifi", up=True)
            return True
        board.emit("wifi", up=False)
        return False

    async def _serve(self):
        client = self.client
        await client.connect(clean_session=False)
        self.connected = True
        self._backoff = BACKOFF_MIN_S
        self.board.emit("connected")
        if self.flow.state == "idle":
            self.board.show("idle")
        await client.subscribe(self.topics["config"], 1)
        await client.subscribe(self.topics["prompt"], 1)
        await self._publish_state()
        tasks = [
            asyncio.create_task(self._linked(self._send_outbox())),
            asyncio.create_task(self._linked(self._send_telemetry())),
            asyncio.create_task(self._linked(self._watch_link())),
        ]
        try:
            await client.read_loop(self.settings["keepalive_s"] * 1.5)
        finally:
            for task in tasks:
                task.cancel()

    async def _linked(self, coro):
        """A task of one connection: its failure closes the connection."""
        try:
            await coro
        except Exception as e:
            self.board.emit("link_task_failed", reason=repr(e))
            self.client.close()

    async def _watch_link(self):
        """Ping the broker, and drop the connection at once when Wi-Fi goes."""
        elapsed = 0
        while True:
            await asyncio.sleep(1)
            if not self.board.wifi_connected():
                raise OSError("Wi-Fi lost")
            elapsed += 1
            if elapsed * 2 >= self.settings["keepalive_s"]:
                elapsed = 0
                await self.client.ping()

    async def _send_outbox(self):
        """Send the oldest queued rating, wait for its PUBACK, remove it; repeat.

        One rating in flight at a time: a power cut can then resend at most one.
        """
        while True:
            self._wake.clear()
            record = self.outbox.peek()
            if record is None:
                await self._wake.wait()
                continue
            payload = self._payload(record)
            if payload is None:  # waiting for the clock to stamp it
                await asyncio.sleep(1)
                continue
            self._acked.clear()
            dup = self._inflight_pid is not None
            self._inflight_pid = await self.client.publish(
                self.topics["rating"], payload, 1, False, self._inflight_pid, dup
            )
            await asyncio.wait_for(self._acked.wait(), PUBACK_TIMEOUT_S)
            seq = outbox.decode(record)[0]["seq"]
            self.outbox.pop()
            self._inflight_pid = None
            self.board.emit("acked", seq=seq)

    def _payload(self, record):
        """The wire message; a rating pressed before the clock was known gets its time now."""
        fields, at_ticks = outbox.decode(record)
        if fields["ts"] is None and at_ticks is not None and fields["boot"] == self.counters.boot:
            wall = self.board.wall_ms()
            if wall is not None:
                fields["ts"] = wall - ticks_diff(ticks_ms(), at_ticks)
            elif ticks_diff(ticks_ms(), self.started) < TIME_WAIT_MS:
                return None
        return protocol.encode(protocol.rating(**fields))

    def _on_puback(self, pid):
        if pid == self._inflight_pid:
            self._acked.set()

    def _on_message(self, topic, payload, retained):
        try:
            message = json.loads(payload)
        except ValueError:
            message = None
        if topic == self.topics["config"]:
            self._on_config(message)
        elif topic == self.topics["prompt"]:
            self._on_prompt(message)

    def _on_config(self, message):
        try:
            changed = self.config.apply(message)
        except ConfigError as e:
            self.board.emit("config_rejected", reason=str(e))
            return
        self.board.emit("config", changed=changed)
        if "telemetry_s" in changed:
            self._report_now.set()

    def _on_prompt(self, message):
        if not isinstance(message, dict):
            self.board.emit("prompt_rejected", payload=repr(message))
            return
        self._handle(self.flow.prompt(ticks_ms(), protocol.clean_ticket(message.get("ticket"))))

    # --- state and telemetry ---

    def _state_changed(self):
        if self.connected:
            asyncio.create_task(self._linked(self._publish_state()))

    async def _publish_state(self):
        state = protocol.state(True, self.counters.boot)
        if self.stuck:
            state["stuck_keys"] = self.stuck
        if self.counters.stats["dropped"]:
            state["dropped"] = self.counters.stats["dropped"]
        await self.client.publish(self.topics["state"], protocol.encode(state), 1, True)

    async def _send_telemetry(self):
        while True:
            if self.counters.dirty:
                self.counters.save()
            message = protocol.telemetry(
                boot=self.counters.boot,
                uptime_s=ticks_diff(ticks_ms(), self.started) // 1000,
                rssi=self.board.rssi(),
                heap_free=gc.mem_free(),
                queue=len(self.outbox),
                battery_mv=self.board.battery_mv(),
                stats=self.counters.stats,
                stuck_keys=self.stuck,
                time_known=self.board.wall_ms() is not None,
            )
            await self.client.publish(self.topics["telemetry"], protocol.encode(message), 0)
            self._report_now.clear()
            try:
                await asyncio.wait_for(self._report_now.wait(), self.config["telemetry_s"])
            except asyncio.TimeoutError:
                pass

    # --- time ---

    async def _keep_time(self):
        synced = None
        while True:
            ok = self.board.wifi_connected() and self.board.sync_time(self.settings["ntp_host"])
            if ok != synced:
                self.board.emit("time", synced=ok)
                synced = ok
                self._wake.set()
            await asyncio.sleep(TIME_RESYNC_S if ok else TIME_RETRY_S)
