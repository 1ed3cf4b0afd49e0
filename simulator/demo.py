"""The demo: a local broker, database and collector, and a scenario's hall of terminals.

By default the small-hall scenario on real firmware processes (fidelity mode). Everything runs
under one data folder; every process started here is stopped on exit, whether the run ends by
--duration, Ctrl-C or SIGTERM. At the end the ground truth is checked against InfluxDB.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from types import FrameType

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from collector.influx import InfluxError, InfluxWriter
from simulator import live, scenario, verify
from simulator.fidelity import FidelityRun
from simulator.local import LocalStack
from simulator.run import ScaleRun
from simulator.truth import GroundTruth

ROOT = "svc/v1"
STORE_WAIT_S = 30.0


class Demo:
    def __init__(self, data_dir: Path, scenario_name: str, mode: str) -> None:
        self.data_dir = data_dir
        self.scenario = scenario.load(scenario_name)
        self.mode = mode
        self.truth_path = data_dir / "truth.jsonl"
        self.runner: FidelityRun | ScaleRun | None = None

    def run(self, duration_s: float | None, quiet: bool, console: Console) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        console.print(f"[bold]Starting[/] broker, database and collector under {self.data_dir}")
        with LocalStack(self.data_dir, ROOT) as local:
            console.print(
                f"broker {local.broker.url}  database {local.influx.url}/{local.database}  "
                f"collector log {self.data_dir / 'collector' / 'collector.log'}"
            )
            writer = InfluxWriter(local.influx.url, local.database)
            self.runner = self._runner(local)
            self._play(writer, duration_s, quiet, console)
            give_up = time.monotonic() + STORE_WAIT_S
            while self._stored(writer)[1] and time.monotonic() < give_up:
                time.sleep(0.5)
            console.print(self._summary(writer), highlight=False)
            console.print(verify.table(verify.verify(self.truth_path, writer)), highlight=False)
        console.print("\n[bold]Stopped[/]: every process started by the demo has ended.")
        return 0

    def _runner(self, local: LocalStack) -> FidelityRun | ScaleRun:
        truth = GroundTruth(self.truth_path)
        if self.mode == "scale":
            broker = ("127.0.0.1", local.broker.port)
            return ScaleRun(self.scenario, broker, ROOT, truth, local.restart_broker)
        return FidelityRun(
            self.scenario,
            local.broker.url,
            ROOT,
            truth,
            workdir=self.data_dir / "terminals",
            restart_broker=local.restart_broker,
        )

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self.runner is not None:
            self.runner.stop_event.set()

    def _play(
        self, writer: InfluxWriter, duration_s: float | None, quiet: bool, console: Console
    ) -> None:
        runner = self.runner
        assert runner is not None
        player = threading.Thread(
            target=(lambda: asyncio.run(runner.run()))
            if isinstance(runner, ScaleRun)
            else runner.run,
            name="run",
        )
        player.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        view = None if quiet else Live(console=console, auto_refresh=False)
        with view or nullcontext():
            while player.is_alive():
                if deadline is not None and time.monotonic() >= deadline:
                    runner.stop_event.set()
                if view is None:
                    console.print(self._summary(writer), highlight=False)
                else:
                    text = Text(self._summary(writer), style="bold")
                    view.update(Group(text, live.view(runner.progress)), refresh=True)
                player.join(10 if view is None else 1)

    def _stored(self, writer: InfluxWriter) -> tuple[int, int]:
        """(ratings of this run found in InfluxDB, differences so far)."""
        assert self.runner is not None
        self.runner.truth.flush()
        try:
            reports = verify.verify(self.truth_path, writer)
        except (InfluxError, ValueError):
            return 0, -1
        found = sum(r.expected - len(r.lost) for r in reports)
        return found, sum(r.differences for r in reports)

    def _summary(self, writer: InfluxWriter) -> str:
        assert self.runner is not None
        progress = self.runner.progress
        customers = sum(t.prompts for t in progress.tallies.values())
        stored, _ = self._stored(writer)
        return (
            f"{live.status(progress)}\n"
            f"customers {customers}  recorded {progress.sent}  acked {progress.acked}  "
            f"stored {stored}"
        )
