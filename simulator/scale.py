"""Scale mode's run: every counter of a scenario as a virtual terminal, driven by the plan.

The simulated clock runs `speed` times the real one and skips the idle stretches (nights,
quiet hours), so press times follow the scenario's calendar while a month takes minutes.
With speed 0 the plan is played as fast as the broker acknowledges.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from simulator import plan
from simulator.access import Access
from simulator.desk import FrontDesk, front_desk
from simulator.roster import Roster
from simulator.scenario import Scenario
from simulator.truth import GroundTruth
from simulator.virtual import Tally, VirtualTerminal

log = structlog.get_logger("simulator")

IDLE_SKIP_S = 2.0  # real seconds of nothing to do that the clock skips instead
BACKLOG_PER_TERMINAL = 50  # unacknowledged ratings, on average, before the plan waits
PACE_EVERY = 100  # actions between two looks at the backlog
SETTLE_S = 60.0  # real seconds to let the last ratings reach the broker
CONFIG_WAIT_S = 10.0  # real seconds for a terminal to take a login from the front desk


@dataclass
class Progress:
    """The run as the live view shows it."""

    scenario: str
    utc_offset_h: float = 0.0  # the halls' local time
    sim_ms: int = 0
    day: int = 0
    actions: int = 0
    faults: list[str] = field(default_factory=list)
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(t.ratings for t in self.tallies.values())

    @property
    def acked(self) -> int:
        return sum(t.acked for t in self.tallies.values())


class SimClock:
    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._base: tuple[int, float] | None = None  # (simulated ms, real monotonic s)

    async def until(self, sim_ms: int) -> None:
        if self.speed == 0:
            return
        now = time.monotonic()
        if self._base is None:
            self._base = (sim_ms, now)
        wait = (sim_ms - self._base[0]) / 1000 / self.speed - (now - self._base[1])
        if wait > IDLE_SKIP_S:
            self._base = (sim_ms, now)  # nothing happens meanwhile: skip ahead
        elif wait > 0:
            await asyncio.sleep(wait)


class ScaleRun:
    def __init__(
        self,
        scenario: Scenario,
        access: Access,
        root: str,
        truth: GroundTruth,
        restart_broker: Callable[[float], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.truth = truth
        self.restart_broker = restart_broker
        self.stop_event = threading.Event()  # set from another thread: stop after this action
        self.roster = Roster(scenario)
        self.access = access
        self.root = root
        self.desk: FrontDesk | None = None  # made when the run starts, if a hall keeps a roster
        hall_of = {c: h for h in scenario.halls for c in h.counters}
        self.terminals = {
            (c.site, c.counter): VirtualTerminal(
                c,
                hall_of[c],
                root=root,
                broker=access.device_settings(c.site, c.device),
                window_s=scenario.window_s,
                record=lambda rating: truth.record(self.roster.attributed(rating)),
            )
            for c in scenario.counters
        }
        self.progress = Progress(
            scenario.name,
            scenario.utc_offset_h,
            tallies={k: t.tally for k, t in self.terminals.items()},
        )
        self._order = itertools.count()

    async def run(self, connect_timeout_s: float = 60) -> Progress:
        tasks = [
            asyncio.ensure_future(t.serve(self.scenario.telemetry_s))
            for t in self.terminals.values()
        ]
        self.desk = front_desk(self.roster, self.access, self.root)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(t.connected.wait() for t in self.terminals.values())),
                connect_timeout_s,
            )
            log.info("terminals_connected", terminals=len(self.terminals))
            for day in range(1, self.scenario.days + 1):
                if self.stop_event.is_set():
                    break
                self.progress.day = day
                await self._play(day)
            await self._settle()
        finally:
            for terminal in self.terminals.values():
                terminal.switch_off()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.desk is not None:
                self.desk.close()
            self.truth.close()
        return self.progress

    async def _play(self, day: int) -> None:
        """One day's plan, with each terminal's flow ticked at its own deadlines."""
        clock = SimClock(self.scenario.speed)
        due: list[tuple[int, int, str, plan.Action | None, tuple[str, str]]] = []
        for planned in plan.day(self.scenario, day):
            where = (planned.site, planned.counter)
            heapq.heappush(due, (planned.at_ms, next(self._order), planned.kind, planned, where))
        ticking: dict[tuple[str, str], int] = {}
        while due and not self.stop_event.is_set():
            at, _, kind, action, where = heapq.heappop(due)
            await clock.until(at)
            self.progress.sim_ms = at
            terminal = self.terminals.get(where)
            if kind == "tick" and terminal is not None:
                ticking.pop(where, None)
                terminal.tick(at)
            elif kind == "restore" and terminal is not None:
                terminal.restore()
            elif action is not None:
                await self._do(action, terminal, due)
            if terminal is not None:
                deadline = terminal.next_deadline()
                if deadline is not None and ticking.get(where) != deadline:
                    ticking[where] = deadline
                    heapq.heappush(due, (deadline, next(self._order), "tick", None, where))
            await self._keep_pace()
        for terminal in self.terminals.values():  # the day ends: close what is open
            terminal.tick(self.progress.sim_ms + 3_600_000)

    async def _do(
        self,
        action: plan.Action,
        terminal: VirtualTerminal | None,
        due: list[tuple[int, int, str, plan.Action | None, tuple[str, str]]],
    ) -> None:
        self.progress.actions += 1
        if action.kind == "broker_restart":
            self.progress.faults.append("broker_restart")
            if self.restart_broker is None:
                log.warning("fault_skipped", kind="broker_restart", why="the broker is not ours")
            else:
                log.info("fault", kind="broker_restart", seconds=action.seconds)
                await asyncio.to_thread(self.restart_broker, action.seconds)
            return
        if terminal is None:
            return
        if action.kind == "login":
            await self._log_in(terminal, action.staff)
        elif action.kind in ("wifi_drop", "power_cut"):
            self.progress.faults.append(f"{action.kind} {action.site}/{action.counter}")
            log.info("fault", kind=action.kind, site=action.site, counter=action.counter)
            terminal.fault(action.kind)
            back = action.at_ms + int(action.seconds * 1000)
            heapq.heappush(
                due, (back, next(self._order), "restore", None, (action.site, action.counter))
            )
        else:
            terminal.act(action)

    async def _log_in(self, terminal: VirtualTerminal, staff: str | None) -> None:
        """The front desk sets the terminal's clerk; the plan goes on once it has taken it
        (a terminal off the network takes it when it is back)."""
        assert self.desk is not None
        c = terminal.counter
        await asyncio.to_thread(self.desk.log_in, c.site, c.device, staff)
        if terminal.reachable and not await terminal.configured(staff, CONFIG_WAIT_S):
            log.warning("login_not_taken", site=c.site, counter=c.counter, staff=staff)

    async def _keep_pace(self) -> None:
        """Let the network run, and wait while the terminals are too far ahead of the broker
        (looked at every PACE_EVERY actions: it sums over every terminal)."""
        await asyncio.sleep(0)
        if self.progress.actions % PACE_EVERY:
            return
        limit = BACKLOG_PER_TERMINAL * len(self.terminals)
        while self.progress.sent - self.progress.acked > limit:
            await asyncio.sleep(0.01)

    async def _settle(self) -> None:
        """Wait until the broker has acknowledged every rating and each terminal has reported
        its last counters, or SETTLE_S passed."""
        for terminal in self.terminals.values():
            terminal.restore()
        give_up = time.monotonic() + SETTLE_S
        while self.progress.sent > self.progress.acked and time.monotonic() < give_up:
            await asyncio.sleep(0.1)
        for terminal in self.terminals.values():  # the run's last counters, reported
            terminal.report_now()
        while not all(t.reported for t in self.terminals.values()) and time.monotonic() < give_up:
            await asyncio.sleep(0.1)
        self.truth.flush()
        log.info("settled", sent=self.progress.sent, acked=self.progress.acked)
