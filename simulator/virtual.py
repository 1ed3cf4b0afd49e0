"""Scale mode: a rating terminal as an asyncio task in CPython, thousands to a process.

It runs the firmware's own rating flow (firmware/flow.py), message encoding (protocol.py) and
MQTT client (mqtt.py), imported under CPython, on the simulated clock; only the board, the
flash queue and the Wi-Fi are left out. Unacknowledged ratings are kept in memory as the
firmware keeps them on flash (a power cut keeps them), and sent again, in order, on every
reconnection, so that every rating reaches the broker at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.firmware import firmware_module
from simulator.plan import Action
from simulator.scenario import SCORES, Counter, Hall

config_fw = firmware_module("config")
flow_fw = firmware_module("flow")
protocol = firmware_module("protocol")
mqtt_fw = firmware_module("mqtt")

IN_FLIGHT = 20  # unacknowledged ratings a terminal sends ahead
RECONNECT_S = (1.0, 10.0)  # real seconds, doubling, with jitter
PING_S = 20.0  # the broker's keep-alive is 30 s; the read side gives up after 45 s


@dataclass
class Tally:
    """What one counter did, for the live view and the tests."""

    prompts: int = 0
    ratings: int = 0
    skipped: int = 0
    satisfied: int = 0  # score >= 4
    poor: int = 0  # score <= 2
    stray: int = 0
    acked: int = 0
    faults: list[str] = field(default_factory=list)
    by_cause: dict[str, int] = field(default_factory=dict)

    @property
    def rated(self) -> int:
        return self.ratings - self.skipped


class VirtualTerminal:
    def __init__(
        self,
        counter: Counter,
        hall: Hall,
        *,
        root: str,
        broker: tuple[str, int],
        window_s: int,
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self.counter = counter
        self.root = root
        self.broker = broker
        self.record = record  # the ground truth: every rating this terminal makes
        self.config = {  # the firmware's defaults, as a hall would set its terminals
            **config_fw.DEFAULTS,
            "counter": counter.counter,
            "staff": counter.staff,
            "mode": hall.mode,
            "window_s": window_s,
            "buttons": list(SCORES),
        }
        self.flow = flow_fw.RatingFlow(self.config, 0)
        self.tally = Tally()
        self.boot = 1
        self.seq = 0
        self.unacked: OrderedDict[int, bytes] = OrderedDict()  # by seq: as on flash
        self._in_flight: dict[int, int] = {}  # packet id -> seq
        self._sent_before: set[int] = set()  # seqs sent on an earlier connection: DUP
        self._opened_by = "customer"  # what opened the current window
        self._awaiting_reason: str | None = None  # what pressed the score awaiting its reason
        self._stuck: set[int] = set()
        self._down = asyncio.Event()  # set while a fault holds the terminal off the network
        self._client: Any = None
        self._wake = asyncio.Event()
        self._report_now = asyncio.Event()
        self._reports: list[bytes] = []  # telemetry taken, waiting to be sent
        self._configured = asyncio.Event()  # set at each config message taken
        self.connected = asyncio.Event()

    def topic(self, kind: str) -> str:
        return str(protocol.topic(self.root, self.counter.site, self.counter.device, kind))

    # --- what the plan does to it -------------------------------------------------------

    def act(self, action: Action) -> None:
        now = action.at_ms
        if action.kind == "prompt":
            self.tally.prompts += 1
            self._handle(self.flow.prompt(now), now, action.cause)
            self._opened_by = action.cause
        elif action.kind in ("press", "reason"):
            if action.button in self._stuck:
                return  # a jammed key gives no press
            self._handle(self.flow.press(action.button, now), now, action.cause)
        elif action.kind in ("stuck", "unstuck"):  # the firmware reports a jam at once
            (self._stuck.add if action.kind == "stuck" else self._stuck.discard)(action.button)
            self.report_now()

    def report_now(self) -> None:
        """Send telemetry as it is now, without waiting for the next report."""
        self._reports.append(self._telemetry())
        self._report_now.set()

    @property
    def reported(self) -> bool:
        """Every telemetry report taken has been sent."""
        return not self._reports

    def tick(self, now: int) -> None:
        self._handle(self.flow.tick(now), now, "customer")

    def next_deadline(self) -> int | None:
        deadline: int | None = self.flow.next_deadline()
        return deadline

    def fault(self, kind: str) -> None:
        """Wi-Fi gone or power cut: off the network at once, the broker sends the last will."""
        self.tally.faults.append(kind)
        self._down.set()
        if kind == "power_cut":
            self.boot += 1
            self.flow = flow_fw.RatingFlow(self.config, 0)  # an open window dies with the power
        self._drop_connection()

    def switch_off(self) -> None:
        """The run is over: the terminal goes off the network as if unplugged (its will)."""
        self._down.set()
        self._drop_connection()

    def restore(self) -> None:
        self._down.clear()
        self._wake.set()

    @property
    def reachable(self) -> bool:
        """Connected and not held off the network by a fault: a config sent now arrives."""
        return self.connected.is_set() and not self._down.is_set()

    async def configured(self, staff: str | None, timeout_s: float) -> bool:
        """Wait until the retained config has logged this clerk in (None: nobody)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout_s
        while self.config["staff"] != staff:
            self._configured.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._configured.wait(), give_up - loop.time())
            if loop.time() >= give_up:
                return bool(self.config["staff"] == staff)
        return True

    def _on_message(self, topic: str, payload: bytes, _retained: bool) -> None:
        """The retained config, checked and merged as the firmware does (a bad one ignored)."""
        if topic != self.topic("config"):
            return
        try:
            self.config.update(config_fw.changes(json.loads(payload)))
        except (ValueError, config_fw.ConfigError):
            return
        self._configured.set()

    def _handle(self, events: list[tuple[Any, ...]], now: int, cause: str) -> None:
        """Ratings are put down to what caused them: a skipped window to whoever opened it,
        a score to whoever pressed it (also when its reason comes later)."""
        for event in events:
            if event[:2] == ("show", "reason"):
                self._awaiting_reason = cause
            elif event[0] == "rating":
                outcome = event[1]
                if outcome.score is None:
                    self._rated(outcome, self._opened_by)
                else:
                    self._rated(outcome, self._awaiting_reason or cause)
                    self._awaiting_reason = None
            elif event[0] == "stray":
                self.tally.stray += 1

    def _rated(self, outcome: Any, cause: str) -> None:
        self.seq += 1
        c = self.counter
        message = protocol.rating(
            self.seq,
            self.boot,
            outcome.at_ticks,  # the simulated clock is the terminal's clock
            outcome.score,
            self.config["counter"],
            self.config["staff"],
            outcome.mode,
            outcome.reason,
            outcome.ticket,
            outcome.wait_ms,
        )
        self.record({"site": c.site, "device": c.device, "cause": cause, **message})
        self.unacked[self.seq] = protocol.encode(message)
        t = self.tally
        t.ratings += 1
        t.by_cause[cause] = t.by_cause.get(cause, 0) + 1
        if outcome.score is None:
            t.skipped += 1
        elif outcome.score >= 4:
            t.satisfied += 1
        elif outcome.score <= 2:
            t.poor += 1
        self._wake.set()

    # --- the network --------------------------------------------------------------------

    async def serve(self, telemetry_s: float) -> None:
        """Stay connected (but while a fault holds it down), send, report; until cancelled."""
        delay = RECONNECT_S[0]
        while True:
            while self._down.is_set():
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._session(telemetry_s)
                delay = RECONNECT_S[0]
            except (TimeoutError, OSError, mqtt_fw.MQTTError):
                self._drop_connection()
                if not self._down.is_set():
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, RECONNECT_S[1])

    async def _session(self, telemetry_s: float) -> None:
        host, port = self.broker
        c = self.counter
        client = mqtt_fw.MQTTClient(c.device, host, port, keepalive=30)
        client.set_last_will(self.topic("state"), protocol.encode(protocol.state(False)), True, 1)
        client.on_puback = self._on_puback
        client.on_message = self._on_message
        await client.connect(clean_session=False)
        self._client = client
        self._in_flight.clear()
        await client.subscribe(self.topic("config"), 1)
        await client.publish(
            self.topic("state"), protocol.encode(protocol.state(True, self.boot)), 1, True
        )
        self.connected.set()
        reader = asyncio.ensure_future(client.read_loop(45))
        reporter = asyncio.ensure_future(self._report(client, telemetry_s))
        try:
            while True:
                await self._send_ahead(client)
                self._wake.clear()
                waiting = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {reader, reporter, waiting}, return_when=asyncio.FIRST_COMPLETED
                )
                waiting.cancel()
                for task in done & {reader, reporter}:
                    task.result()  # raises what ended it
                if self._client is not client:
                    raise OSError("dropped")
        finally:
            for task in (reader, reporter):
                task.cancel()
                if task.done() and not task.cancelled():
                    task.exception()  # taken: the session ends either way
            self.connected.clear()

    async def _send_ahead(self, client: Any) -> None:
        """Send the oldest unacknowledged ratings not in flight, up to IN_FLIGHT."""
        sending = set(self._in_flight.values())
        for seq, payload in list(self.unacked.items()):
            if len(self._in_flight) >= IN_FLIGHT:
                return
            if seq in sending:
                continue
            pid = client.next_pid()
            self._in_flight[pid] = seq
            again = seq in self._sent_before
            self._sent_before.add(seq)
            await client.publish(self.topic("rating"), payload, 1, False, pid, again)

    def _on_puback(self, pid: int) -> None:
        seq = self._in_flight.pop(pid, None)
        if seq is not None and self.unacked.pop(seq, None) is not None:
            self._sent_before.discard(seq)
            self.tally.acked += 1
        self._wake.set()

    async def _report(self, client: Any, telemetry_s: float) -> None:
        """Telemetry every telemetry_s and whenever a key jams or frees (as taken then), and a
        ping at least every PING_S for the keep-alive."""
        loop = asyncio.get_running_loop()
        due = 0.0
        while True:
            if loop.time() >= due:
                due = loop.time() + telemetry_s
                self._reports.append(self._telemetry())
            while self._reports:
                await client.publish(self.topic("telemetry"), self._reports.pop(0), 0)
            await client.ping()
            self._report_now.clear()
            pause = min(PING_S, max(0.0, due - loop.time())) or PING_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report_now.wait(), pause)

    def _telemetry(self) -> bytes:
        t = self.tally
        stats = {
            "prompts": t.prompts,
            "rated": t.rated,
            "skipped": t.skipped,
            "stray": t.stray,
            "dropped": 0,
        }
        message = protocol.telemetry(
            self.boot, 0, -60, 40000, len(self.unacked), None, stats, sorted(self._stuck), True
        )
        return bytes(protocol.encode(message))

    def _drop_connection(self) -> None:
        """Close the socket without DISCONNECT, as a radio gone or power cut would."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self._wake.set()
