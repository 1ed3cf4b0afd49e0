"""Scale mode: a rating terminal as asyncio tasks in CPython, thousands to a process.

It runs the firmware's own rating flow (firmware/flow.py), queue records (outbox.py), config
checks (config.py) and its whole uplink (uplink.py: session, ratings sent ahead and resent until
a collector acknowledges them, telemetry, state and will, config), imported under CPython, on
the simulated clock. Only the board, the flash and the Wi-Fi are stood in for, by the small
classes below: the queue is kept in memory, as flash keeps it across a power cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from firmware import contract
from fwtools.unix_port import firmware_module
from simulator.plan import Action
from simulator.scenario import SCORES, Counter, Hall

config_fw = firmware_module("config")
flow_fw = firmware_module("flow")
outbox_fw = firmware_module("outbox")
uplink_fw = firmware_module("uplink")
settings_fw = firmware_module("settings")

KEEPALIVE_S = 30
RECONNECT_MAX_S = 10
WIFI_POLL_MS = 5000  # the virtual board hears of a Wi-Fi loss at once: this only paces pings


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
    resent: int = 0  # copies sent again for want of an ack in time
    faults: list[str] = field(default_factory=list)
    by_cause: dict[str, int] = field(default_factory=dict)

    @property
    def rated(self) -> int:
        return self.ratings - self.skipped


class MemoryQueue:
    """The flash queue's interface (firmware/outbox.py) in memory; its ratings are dated when
    queued, so none is stamped late."""

    head_saved = True  # nothing to save: the queue lives as long as the run

    def __init__(self) -> None:
        self._records: deque[bytes] = deque()

    def __len__(self) -> int:
        return len(self._records)

    def append(self, record: bytes) -> bool:
        self._records.append(record)
        return True

    def oldest(self, limit: int, skip: int = 0) -> list[bytes]:
        return list(islice(self._records, skip, skip + limit))

    def peek(self) -> bytes | None:
        return self._records[0] if self._records else None

    def requeue(self) -> int:
        self._records.rotate(-1)
        return int(outbox_fw.seq_of(self._records[-1]))

    def forget(
        self, acked: Callable[[int], bool], gone: Callable[[int], None], _save: bool = True
    ) -> int:
        count = 0
        while self._records and acked(seq := outbox_fw.seq_of(self._records[0])):
            self._records.popleft()
            count += 1
            gone(seq)
        return count


class MemoryCounters:
    """The firmware's store.Counters without the file: boot, the last seq, the running stats."""

    def __init__(self) -> None:
        self.boot = 1
        self.seq = 0
        self.stats = dict.fromkeys(contract.STATS, 0)
        self.dirty = False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def save(self) -> None:
        """Nothing to save: the counters live as long as the run."""


class VirtualBoard:
    """What the uplink asks of a board: Wi-Fi (up unless a fault holds it down), the clock
    (the simulated one), and where its events go."""

    wifi_poll_ms = WIFI_POLL_MS

    def __init__(self, on_event: Callable[..., None]) -> None:
        self.down = False
        self.now_ms = 0
        self.emit = on_event

    def wifi_connected(self) -> bool:
        return not self.down

    async def wifi_connect(self, _ssid: str | None, _password: str | None) -> bool:
        return not self.down

    def wall_ms(self) -> int:
        return self.now_ms

    def rssi(self) -> int:
        return -60

    def battery_mv(self) -> None:
        return None

    def heap_free(self) -> int:
        return 40_000


class VirtualTerminal:
    def __init__(
        self,
        counter: Counter,
        hall: Hall,
        *,
        root: str,
        broker: dict[str, Any],
        window_s: int,
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self.counter = counter
        self.record = record  # the ground truth: every rating this terminal makes
        self.settings = {
            "topic_root": root,
            "site": counter.site,
            "device": counter.device,
            **broker,  # its broker settings, as Access.device_settings() gives them
            "keepalive_s": KEEPALIVE_S,
            "reconnect_max_s": RECONNECT_MAX_S,
            "wifi_ssid": None,
            "wifi_password": None,
        }
        settings_fw.resolve_broker(self.settings)
        self.initial_config = {  # as a hall would set its terminals
            "counter": counter.counter,
            "staff": counter.staff,
            "mode": hall.mode,
            "aspects": hall.aspects,
            "window_s": window_s,
            "buttons": list(SCORES),
        }
        self.config = config_fw.Config(None, self.initial_config)
        self.flow = flow_fw.RatingFlow(self.config, 0)
        self.tally = Tally()
        self.counters = MemoryCounters()
        self.queue = MemoryQueue()
        self.board = VirtualBoard(self._on_event)
        self.uplink = self._new_uplink()
        self._opened_by = "customer"  # what opened the current window
        # what pressed the score awaiting its reason, or the attitude awaiting efficiency
        self._awaiting: str | None = None
        self._stuck: set[int] = set()
        self._powered = asyncio.Event()
        self._powered.set()
        self._running: asyncio.Future[Any] | None = None
        self._configured = asyncio.Event()  # set at each config message taken
        self.connected = asyncio.Event()

    def _new_uplink(self) -> Any:
        return uplink_fw.Uplink(
            self.board,
            self.settings,
            self.config,
            self.counters,
            self.queue,
            self._on_link,
            lambda _ticket: None,  # prompts come from the plan, not the prompt topic
        )

    @property
    def unacked(self) -> int:
        """Ratings queued that no collector has acknowledged yet."""
        return len(self.queue)

    # --- what the plan does to it -------------------------------------------------------

    def act(self, action: Action) -> None:
        now = self.board.now_ms = action.at_ms
        if action.kind == "prompt":
            self.tally.prompts += 1
            self.counters.stats["prompts"] += 1
            self._handle(self.flow.prompt(now), action.cause)
            self._opened_by = action.cause
        elif action.kind in ("press", "reason", "aspect"):
            if action.button in self._stuck:
                return  # a jammed key gives no press
            self._handle(self.flow.press(action.button, now), action.cause)
        elif action.kind in ("stuck", "unstuck"):  # the firmware reports a jam at once
            (self._stuck.add if action.kind == "stuck" else self._stuck.discard)(action.button)
            self.uplink.stuck = sorted(self._stuck)
            self.uplink.state_changed()
            self.report_now()

    def report_now(self) -> None:
        self.uplink.report_now()

    @property
    def reported(self) -> bool:
        """Every telemetry report asked for has been sent."""
        return bool(self.uplink.reported)

    def tick(self, now: int) -> None:
        self.board.now_ms = now
        self._handle(self.flow.tick(now), "customer")

    def next_deadline(self) -> int | None:
        deadline: int | None = self.flow.next_deadline()
        return deadline

    def fault(self, kind: str) -> None:
        """Wi-Fi gone or power cut: off the network at once, the broker sends the last will."""
        self.tally.faults.append(kind)
        self.board.down = True
        if kind == "power_cut":
            self.counters.boot += 1
            self.flow = flow_fw.RatingFlow(self.config, 0)  # an open window dies with the power
            self._powered.clear()
            self._power_off()
        else:
            self.uplink.wifi_lost()

    def switch_off(self) -> None:
        """The run is over: the terminal goes off the network as if unplugged (its will)."""
        self.board.down = True
        self._powered.clear()
        self._power_off()

    def restore(self) -> None:
        self.board.down = False
        self._powered.set()

    @property
    def reachable(self) -> bool:
        """Connected and not held off the network by a fault: a config sent now arrives."""
        return self.connected.is_set() and not self.board.down

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

    def _on_event(self, event: str, **fields: Any) -> None:
        """What the firmware's uplink tells its board."""
        if event == "acked":
            self.tally.acked += 1
        elif event == "resent":
            self.tally.resent += 1
        elif event == "config":
            self._configured.set()

    def _on_link(self, up: bool) -> None:
        (self.connected.set if up else self.connected.clear)()

    def _handle(self, events: list[tuple[Any, ...]], cause: str) -> None:
        """Ratings are put down to what caused them: a skipped window to whoever opened it,
        a score to whoever pressed it (also when its reason comes later)."""
        for event in events:
            if event[0] == "show" and event[1] in (flow_fw.REASON, flow_fw.EFFICIENCY):
                self._awaiting = cause
            elif event[0] == "rating":
                rating = event[1]
                if rating["score"] is None:
                    self._rated(rating, self._opened_by)
                else:
                    self._rated(rating, self._awaiting or cause)
                    self._awaiting = None
            elif event[0] == "stray":
                self.tally.stray += 1
                self.counters.stats["stray"] += 1

    def _rated(self, rating: dict[str, Any], cause: str) -> None:
        """Queue the rating as the firmware's terminal does; the simulated clock is its clock."""
        rating.update(
            seq=self.counters.next_seq(),
            boot=self.counters.boot,
            ts=rating["at"],
            counter=self.config["counter"],
            staff=self.config["staff"],
        )
        self.queue.append(outbox_fw.encode(rating))
        message = contract.rating(**{k: rating[k] for k in contract.RATING_FIELDS})
        c = self.counter
        self.record({"site": c.site, "device": c.device, "cause": cause, **message})
        score = rating["score"]
        self.counters.stats["rated" if score is not None else "skipped"] += 1
        t = self.tally
        t.ratings += 1
        t.by_cause[cause] = t.by_cause.get(cause, 0) + 1
        if score is None:
            t.skipped += 1
        elif score >= contract.SATISFIED_MIN:
            t.satisfied += 1
        elif score <= contract.POOR_MAX:
            t.poor += 1
        self.uplink.queued()

    # --- the network --------------------------------------------------------------------

    async def serve(self, telemetry_s: float) -> None:
        """Run the firmware's uplink while powered; a power cut ends it (no DISCONNECT: the
        broker sends the will) and the power's return starts a new one, as a reboot does."""
        self.config.values["telemetry_s"] = int(telemetry_s)
        while True:
            await self._powered.wait()
            self.uplink = self._new_uplink()
            self.uplink.stuck = sorted(self._stuck)
            self._running = asyncio.ensure_future(self.uplink.run())
            try:
                await self._running
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # serve() itself was cancelled: the run is over
            finally:
                self.connected.clear()

    def _power_off(self) -> None:
        if self._running is not None:
            self._running.cancel()
