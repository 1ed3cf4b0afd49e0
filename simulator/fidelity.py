"""Fidelity mode: every counter of a scenario as the real firmware under the MicroPython Unix
port, driven through its simulated board, one process a terminal.

The firmware measures windows and waits on its own clock, so the plan is played in real time
while anything happens; stretches with nothing to do and no window open anywhere are skipped,
and each terminal's calendar is set forward by as much (`clock`), so press times follow the
scenario's days. The ground truth is what the firmware says it recorded (its `rated` events);
each record's `cause` is found by its press time among what the simulator did at that counter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from firmware import contract
from fwtools.unix_port import FirmwareError, firmware_module
from simulator import plan
from simulator.access import Access
from simulator.desk import FrontDesk, front_desk
from simulator.roster import Roster
from simulator.scale import CONFIG_WAIT_S, Progress
from simulator.scenario import SCORES, Counter, Scenario
from simulator.terminal_process import FirmwareTerminal
from simulator.truth import GroundTruth
from simulator.virtual import Tally

log = structlog.get_logger("simulator")

IDLE_SKIP_S = 2.0  # a wait longer than this, with no window open, is skipped
PRESS_SETTLE_S = 0.3  # after a press, the firmware's time to show what it asks next
CLOSE_MARGIN_MS = 500  # a window a prompt closed has its ts within this of that prompt
SETTLE_S = 60.0
flow_fw = firmware_module("flow")
# what a terminal shows while a customer may press: the flow's states that take a press
OPEN_STATES = (flow_fw.WINDOW, flow_fw.REASON, flow_fw.ATTITUDE, flow_fw.EFFICIENCY)


class FirmwareCounter:
    """One counter's terminal process, and what the simulator has seen of it."""

    def __init__(self, counter: Counter, terminal: FirmwareTerminal) -> None:
        self.counter = counter
        self.terminal = terminal
        self.tally = Tally()
        self.stuck: set[int] = set()
        self.prompts: list[tuple[int, str]] = []  # (calendar ms, cause) of each prompt given
        self.presses: list[tuple[int, str]] = []  # and of each press
        self._seen = 0  # rated events of this boot already written to the truth
        self._acked_before = 0  # acknowledgements counted in earlier boots
        self._stray_before = 0
        self.powered = True
        self.linked = True  # its Wi-Fi is up (a fault may take it down)
        self.prompts_this_boot = 0
        self.settling_until = 0.0  # monotonic time until which a press is being taken

    def busy(self) -> bool:
        """A window or reason is open, or may be about to: a prompt not yet seen opened, or
        a press just sent (it may ask for the reason). The clock must not skip ahead then."""
        if time.monotonic() < self.settling_until:
            return True
        if len(self.terminal.of_kind("opened")) < self.prompts_this_boot:
            return True
        # a window's "opened" comes just before its "show": between the two lines it is open
        last = self.terminal.last_of("opened", "show")
        return last is not None and (last["ev"] == "opened" or last["state"] in OPEN_STATES)

    def harvest(self, truth: GroundTruth, roster: Roster) -> None:
        """Write the ratings the firmware recorded since last time, and update the tally."""
        if not self.powered:
            return  # its events are those of the boot the power cut ended, all harvested
        rated = self.terminal.of_kind("rated")
        for event in rated[self._seen :]:
            cause = self._cause(event)
            truth.record(roster.attributed(_truth(self.counter, event, cause)))
            t = self.tally
            t.ratings += 1
            t.by_cause[cause] = t.by_cause.get(cause, 0) + 1
            score = event["score"]
            t.skipped += score is None
            t.satisfied += score is not None and score >= contract.SATISFIED_MIN
            t.poor += score is not None and score <= contract.POOR_MAX
        self._seen = len(rated)
        self.tally.acked = self._acked_before + len(self.terminal.of_kind("acked"))
        self.tally.stray = self._stray_before + len(self.terminal.of_kind("stray"))

    def _cause(self, event: dict[str, Any]) -> str:
        """What made a rating, found by its press time: the press nearest to it, or for a
        skipped window the last prompt before it closed (the closing one excluded)."""
        ts = event.get("ts")
        if ts is None:
            return "customer"
        if event["score"] is None:
            before = [cause for at, cause in self.prompts if at < ts - CLOSE_MARGIN_MS]
            return before[-1] if before else "customer"
        if not self.presses:
            return "customer"
        return min(self.presses, key=lambda p: abs(p[0] - ts))[1]

    def power_cut(self, truth: GroundTruth, roster: Roster) -> None:
        self.terminal.power_cut()  # its last events are all read once it is gone
        self.harvest(truth, roster)
        self._acked_before, self._stray_before = self.tally.acked, self.tally.stray
        self.powered = False

    def power_on(self, calendar_ms: int) -> None:
        """Power back: the terminal boots, with a fresh event list, and learns the calendar."""
        self.terminal.start()
        self._seen = 0
        self.prompts_this_boot = 0
        self.powered = True
        self.terminal.wait_for(lambda e: e["ev"] == "boot", timeout_s=30)
        self.terminal.set_clock(calendar_ms)


def _truth(counter: Counter, event: dict[str, Any], cause: str) -> dict[str, Any]:
    return {
        "site": counter.site,
        "device": counter.device,
        "cause": cause,
        "v": contract.VERSION,
        **{k: event.get(k) for k in contract.RATING_FIELDS},
    }


class FidelityRun:
    def __init__(
        self,
        scenario: Scenario,
        access: Access,
        root: str,
        truth: GroundTruth,
        *,
        workdir: Path,
        restart_broker: Callable[[float], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.truth = truth
        self.restart_broker = restart_broker
        self.stop_event = threading.Event()
        self.roster = Roster(scenario)
        self.access = access
        self.root = root
        self.desk: FrontDesk | None = None  # made when the run starts, if a hall keeps a roster
        hall_of = {c: h for h in scenario.halls for c in h.counters}
        self.counters = {
            (c.site, c.counter): FirmwareCounter(
                c,
                FirmwareTerminal(
                    workdir / c.site / c.device,
                    {
                        **access.device_settings(c.site, c.device),
                        "topic_root": root,
                        "counter": c.counter,
                        "staff": c.staff,
                        "mode": hall_of[c].mode,
                        "aspects": hall_of[c].aspects,
                        "window_s": scenario.window_s,
                        "buttons": list(SCORES),
                        "telemetry_s": max(5, int(scenario.telemetry_s)),
                    },
                ),
            )
            for c in scenario.counters
        }
        self.progress = Progress(
            scenario.name,
            scenario.utc_offset_h,
            tallies={k: c.tally for k, c in self.counters.items()},
        )
        self._sim_base = (0, 0.0)  # (simulated ms, real monotonic s) the clock runs from

    def run(self) -> Progress:
        try:
            for fc in self.counters.values():
                fc.terminal.start()
            for fc in self.counters.values():
                fc.terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=60)
            self.desk = front_desk(self.roster, self.access, self.root)
            for day in range(1, self.scenario.days + 1):
                if self.stop_event.is_set():
                    break
                self.progress.day = day
                self._play(day)
            self._settle()
        finally:
            for fc in self.counters.values():
                fc.harvest(self.truth, self.roster)
                fc.terminal.stop()
            if self.desk is not None:
                self.desk.close()
            self.truth.close()
        return self.progress

    def now_ms(self) -> int:
        base_sim, base_real = self._sim_base
        return base_sim + int((time.monotonic() - base_real) * 1000)

    def _jump(self, sim_ms: int) -> None:
        self._sim_base = (sim_ms, time.monotonic())
        for fc in self.counters.values():
            if fc.terminal.running:
                fc.terminal.set_clock(sim_ms)

    def _play(self, day: int) -> None:
        due = plan.day(self.scenario, day)
        restores: list[tuple[int, plan.Action]] = []
        if due:
            self._jump(due[0].at_ms)
        while (due or restores) and not self.stop_event.is_set():
            restores.sort(key=lambda r: r[0])
            if restores and (not due or restores[0][0] <= due[0].at_ms):
                at, action = restores.pop(0)
                self._wait_until(at)
                self._restore(action)
                continue
            action = due.pop(0)
            self._wait_until(action.at_ms)
            self.progress.sim_ms = action.at_ms
            self.progress.actions += 1
            back = self._do(action)
            if back is not None:
                restores.append((action.at_ms + int(action.seconds * 1000), action))
            for fc in self.counters.values():
                fc.harvest(self.truth, self.roster)

    def _wait_until(self, sim_ms: int) -> None:
        """Wait in real time; but skip ahead once the wait is long and no window is open."""
        while not self.stop_event.is_set():
            wait_s = (sim_ms - self.now_ms()) / 1000
            if wait_s <= 0:
                return
            if wait_s > IDLE_SKIP_S and not any(fc.busy() for fc in self.counters.values()):
                self._jump(sim_ms)
                return
            self.stop_event.wait(min(wait_s, 0.2))

    def _do(self, action: plan.Action) -> plan.Action | None:
        """Carry out one action; returns it when something must be undone later."""
        if action.kind == "broker_restart":
            self._restart_broker(action.seconds)
            return None
        fc = self.counters[(action.site, action.counter)]
        terminal = fc.terminal
        if action.kind == "login":  # retained: a terminal without power takes it at boot
            self._log_in(fc, action.staff)
            return None
        if not terminal.running:
            return None  # its power is off: nothing reaches it
        if action.kind == "prompt":
            fc.tally.prompts += 1
            fc.prompts.append((action.at_ms, action.cause))
            fc.prompts_this_boot += 1
            terminal.clerk_key()
        elif action.kind in ("press", "reason", "aspect"):
            if action.button not in fc.stuck:
                if action.kind == "press":
                    fc.presses.append((action.at_ms, action.cause))
                fc.settling_until = time.monotonic() + PRESS_SETTLE_S
                terminal.press(action.button)
        elif action.kind in ("stuck", "unstuck"):
            (fc.stuck.add if action.kind == "stuck" else fc.stuck.discard)(action.button)
            (terminal.hold if action.kind == "stuck" else terminal.release)(action.button)
        elif action.kind in ("wifi_drop", "power_cut"):
            self.progress.faults.append(f"{action.kind} {action.site}/{action.counter}")
            fc.tally.faults.append(action.kind)
            if action.kind == "wifi_drop":
                fc.linked = False
                terminal.wifi(False)
            else:
                fc.power_cut(self.truth, self.roster)
            return action
        return None

    def _restart_broker(self, seconds: float) -> None:
        self.progress.faults.append("broker_restart")
        if self.restart_broker is None:
            log.warning("fault_skipped", kind="broker_restart", why="the broker is not ours")
        else:
            threading.Thread(target=self.restart_broker, args=(seconds,), daemon=True).start()

    def _log_in(self, fc: FirmwareCounter, staff: str | None) -> None:
        """The front desk sets the terminal's clerk; the plan goes on once the firmware has
        taken it (a terminal off the network takes it when it is back)."""
        assert self.desk is not None
        taken = len(fc.terminal.of_kind("config"))
        self.desk.log_in(fc.counter.site, fc.counter.device, staff)
        if fc.linked and fc.terminal.running:
            try:
                fc.terminal.wait_count("config", taken + 1, timeout_s=CONFIG_WAIT_S)
            except FirmwareError:
                log.warning("login_not_taken", site=fc.counter.site, staff=staff)

    def _restore(self, action: plan.Action) -> None:
        fc = self.counters[(action.site, action.counter)]
        if action.kind == "wifi_drop":
            fc.linked = True
            fc.terminal.wifi(True)
        else:
            fc.power_on(self.now_ms())

    def _settle(self) -> None:
        """Let open windows close and every recorded rating be acknowledged."""
        give_up = time.monotonic() + SETTLE_S  # also after stop: what was recorded is sent
        while time.monotonic() < give_up:
            for fc in self.counters.values():
                fc.harvest(self.truth, self.roster)
            if not any(fc.busy() for fc in self.counters.values()) and all(
                fc.tally.acked >= fc.tally.ratings for fc in self.counters.values()
            ):
                return
            time.sleep(0.3)
        self.truth.flush()
