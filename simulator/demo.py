"""The demo: a local broker, database and collector, and a small hall of real terminals.

Everything runs under one data folder; every process started here is stopped on
exit, whether the run ends by --duration, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import heapq
import random
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from devstack import InfluxServer, MosquittoServer
from simulator import figures
from simulator.firmware import FirmwareTerminal
from simulator.local import DATABASE, LocalStack

SITE = "demo-hall"
BUTTONS = [5, 4, 3, 2, 1]

# How customers at each counter tend to score (weights for 5, 4, 3, 2, 1).
QUALITY_PROFILES = [
    (60, 25, 10, 3, 2),
    (45, 35, 12, 5, 3),
    (25, 30, 25, 12, 8),
    (55, 30, 10, 4, 1),
]


PARTICIPATION = 0.85  # share of customers who press before the window closes
SERVICE_S = 6.0  # shortest time between two customers at one counter


@dataclass
class HallCounter:
    terminal: FirmwareTerminal
    weights: tuple[int, ...]
    customers: int = 0

    def customer_done(self, rng: random.Random, now: float) -> list[tuple[float, str]]:
        """The clerk asks for a rating; returns what the customer will do, and when."""
        self.terminal.clerk_key()
        self.customers += 1
        if rng.random() >= PARTICIPATION:
            return []  # walks away: the window closes unrated
        return [(now + rng.uniform(1.0, 4.0), "press")]

    def press(self, rng: random.Random, now: float) -> list[tuple[float, str]]:
        score = rng.choices(BUTTONS, weights=self.weights)[0]
        self.terminal.press(BUTTONS.index(score))
        if score <= 2 and rng.random() < 0.7:
            return [(now + rng.uniform(1.0, 3.0), "reason")]
        return []

    def give_reason(self, rng: random.Random) -> None:
        self.terminal.press(rng.randrange(len(BUTTONS)))


class Demo:
    def __init__(self, data_dir: Path, terminals: int, mean_gap_s: float, seed: int) -> None:
        self.data_dir = data_dir
        self.terminal_count = terminals
        self.mean_gap_s = mean_gap_s
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.counters: list[HallCounter] = []

    def run(self, duration_s: float | None, quiet: bool, console: Console) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        console.print(f"[bold]Starting[/] broker, database and collector under {self.data_dir}")
        with LocalStack(self.data_dir) as local, ExitStack() as stack:
            self._start_terminals(local.broker, stack)
            console.print(
                f"broker {local.broker.url}  database {local.influx.url}/{DATABASE}  "
                f"collector log {self.data_dir / 'collector' / 'collector.log'}"
            )
            self._serve(local.influx, duration_s, quiet, console)
        console.print("\n[bold]Stopped[/]: every process started by the demo has ended.")

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop_event.set()

    def _start_terminals(self, broker: MosquittoServer, stack: ExitStack) -> None:
        for i in range(self.terminal_count):
            terminal = FirmwareTerminal(
                self.data_dir / "terminals" / f"ev-demo{i + 1:02d}",
                {
                    "site": SITE,
                    "device": f"ev-demo{i + 1:02d}",
                    "broker": broker.url,
                    "counter": f"{i + 1:02d}",
                    "staff": f"E{1001 + i}",
                    "buttons": BUTTONS,
                },
            )
            terminal.start()
            stack.callback(terminal.stop)
            profile = QUALITY_PROFILES[i % len(QUALITY_PROFILES)]
            self.counters.append(HallCounter(terminal, profile))
        for counter in self.counters:
            counter.terminal.wait_for(lambda e: e["ev"] == "connected")

    def _serve(
        self, influx: InfluxServer, duration_s: float | None, quiet: bool, console: Console
    ) -> None:
        started = time.time()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        presser = threading.Thread(target=self._press_customers, daemon=True)
        presser.start()
        live = None if quiet else Live(console=console, auto_refresh=False)

        def show() -> int:
            """Draw the figures once; returns the rating points stored since the start."""
            rows = figures.per_counter(influx, DATABASE, int(started * 1e9))
            if live is None:
                console.print(self._summary(rows, time.time() - started))
            else:
                live.update(self._view(rows, time.time() - started), refresh=True)
            return sum(r.windows for r in rows)

        with live or nullcontext():
            period = 10.0 if quiet else 1.0
            while not self.stop_event.is_set():
                show()
                left = period if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                self.stop_event.wait(min(period, left))
            self.stop_event.set()
            presser.join(timeout=5)
            self._settle(show)

    def _settle(self, show: Callable[[], int], timeout_s: float = 15.0) -> None:
        """Let open windows close and the last ratings reach the database."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            busy = any(c.terminal.showing() in ("window", "reason") for c in self.counters)
            if not busy and show() >= self._recorded():
                return
            time.sleep(0.5)

    def _press_customers(self) -> None:
        """Customers finish at each counter about every SERVICE_S + mean_gap_s seconds."""
        start = time.monotonic()
        due: list[tuple[float, int, str]] = [
            (self.rng.expovariate(1 / self.mean_gap_s), i, "customer")
            for i in range(len(self.counters))
        ]
        heapq.heapify(due)
        while due:
            at, i, action = heapq.heappop(due)
            if self.stop_event.wait(max(0.0, start + at - time.monotonic())):
                return
            counter = self.counters[i]
            if action == "customer":
                follow = counter.customer_done(self.rng, at)
                gap = SERVICE_S + self.rng.expovariate(1 / self.mean_gap_s)
                follow.append((at + gap, "customer"))
            elif action == "press":
                follow = counter.press(self.rng, at)
            else:
                counter.give_reason(self.rng)
                follow = []
            for when, what in follow:
                heapq.heappush(due, (when, i, what))

    def _count(self, kind: str) -> int:
        return sum(len(c.terminal.of_kind(kind)) for c in self.counters)

    def _recorded(self) -> int:
        return self._count("rated")

    def _summary(self, rows: list[figures.CounterFigures], elapsed: float) -> str:
        customers = sum(c.customers for c in self.counters)
        return (
            f"{elapsed:5.0f}s  customers {customers}  recorded {self._recorded()}  "
            f"acked {self._count('acked')}  stored {sum(r.windows for r in rows)}"
        )

    def _view(self, rows: list[figures.CounterFigures], elapsed: float) -> Group:
        table = Table(title=f"{SITE}: live satisfaction per counter (since demo start)")
        columns = ("counter", "windows", "rated", "满意率 satisfied", "avg score", "差评 poor")
        for column in columns:
            table.add_column(column, justify="right")
        for row in rows:
            rate = row.satisfaction
            colour = "green" if rate >= 0.9 else "yellow" if rate >= 0.75 else "red"
            table.add_row(
                row.counter,
                str(row.windows),
                str(row.rated),
                Text(f"{rate:.1%}", style=colour),
                f"{row.mean_score:.2f}",
                str(row.unhappy),
            )
        return Group(Text(self._summary(rows, elapsed), style="bold"), table)
