"""The demo: a local broker, database and collector, and a scenario's hall of terminals.

By default the small-hall scenario on real firmware processes (fidelity mode). Everything runs
under one data folder; every process started here is stopped on exit, whether the run ends by
--duration, Ctrl-C or SIGTERM. At the end the ground truth is checked against InfluxDB.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType

from rich.console import Console

from collector.influx import InfluxError, InfluxHttp
from dashboards import appraisal, check, files
from dashboards.boards import ALL as DASHBOARDS
from dashboards.macros import TimeRange
from firmware import contract
from simulator import console_demo, live, scenario, session, verify
from simulator.local import LocalStack
from simulator.truth import GroundTruth

ROOT = contract.ROOT
RUN_ENTRIES = ("broker", "influxdb", "collector", "console", "terminals", "truth.jsonl")
STORE_WAIT_S = 30.0
APPRAISE_EVERY_S = 30.0


def clear_previous_run(data_dir: Path) -> None:
    """Each run starts afresh: what an earlier run left in the folder goes (its ratings would be
    found unexpected by this run's check), and nothing else there is touched."""
    for name in RUN_ENTRIES:
        path = data_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


class Demo:
    def __init__(self, data_dir: Path, scenario_name: str, mode: str) -> None:
        self.data_dir = data_dir
        self.scenario = scenario.load(scenario_name)
        self.mode = mode
        self.truth_path = data_dir / "truth.jsonl"
        self.runner: session.Runner | None = None

    def run(self, duration_s: float | None, quiet: bool, console: Console) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        clear_previous_run(self.data_dir)
        console.print(f"[bold]Starting[/] broker, database and collector under {self.data_dir}")
        with LocalStack(self.data_dir, ROOT) as local, contextlib.ExitStack() as stack:
            console.print(
                f"broker {local.broker.url}  database {local.influx.url}/{local.database}  "
                f"collector log {self.data_dir / 'collector' / 'collector.log'}"
            )
            console.print(
                f"Grafana: provisioning folder {files.PROVISIONING}, with "
                f"SVC_INFLUX_URL={local.influx.url} SVC_INFLUX_DB={local.database} "
                f"SVC_DASHBOARDS_PATH={files.PROVISIONING / 'dashboards' / 'svc-rating'}",
                highlight=False,
            )
            first, after = self._days()
            for board in DASHBOARDS:
                console.print(
                    f"  {board.title}: /d/{board.uid}?from={first}&to={after}", highlight=False
                )
            hall_console, password = console_demo.start(
                self.data_dir, self.scenario, local.broker, local.influx, local.database
            )
            stack.callback(hall_console.stop)
            console.print(
                f"[bold]Hall console[/] {hall_console.url}  login {console_demo.DEMO_USER} / "
                f"{password}  (log {hall_console.log_path})",
                highlight=False,
            )
            writer = InfluxHttp(local.influx.url, local.database)
            done = threading.Event()
            appraiser = threading.Thread(
                target=self._appraise_until, args=(writer, done), name="appraisal", daemon=True
            )
            appraiser.start()
            self.runner = session.runner(
                self.mode,
                self.scenario,
                local.access((c.site, c.device) for c in self.scenario.counters),
                ROOT,
                GroundTruth(self.truth_path),
                workdir=self.data_dir / "terminals",
                restart_broker=local.restart_broker,
            )
            session.play(
                self.runner,
                console,
                quiet=quiet,
                duration_s=duration_s,
                headline=lambda: self._summary(writer),
            )
            done.set()
            appraiser.join()
            self.runner.truth.flush()
            reports = verify.settled(self.truth_path, writer, STORE_WAIT_S)
            console.print(self._summary(writer), highlight=False)
            console.print(verify.table(reports), highlight=False)
            self._dashboards(writer, console)
            console.print(console_demo.summary(hall_console, writer), highlight=False)
        console.print("\n[bold]Stopped[/]: every process started by the demo has ended.")
        return 0

    def _days(self) -> tuple[int, int]:
        """The days played, as Unix ms: where the dashboards show the run."""
        s = self.scenario
        return s.day_start_ms(1), s.day_start_ms(s.days + 1)

    def _appraise(self, writer: InfluxHttp) -> int:
        """The month's appraisal stored for the 员工考核 dashboard; returns the clerks in it."""
        month = self.scenario.start.strftime("%Y-%m")
        rows = appraisal.compute(writer, month)
        appraisal.store(writer, month, "Asia/Shanghai", rows)
        return sum(r.scope == "clerk" for r in rows)

    def _appraise_until(self, writer: InfluxHttp, done: threading.Event) -> None:
        """While the demo plays, the appraisal again every APPRAISE_EVERY_S, so the 员工考核
        dashboard shows the run so far (a month's figures are re-run, never added to)."""
        while not done.wait(APPRAISE_EVERY_S):
            with contextlib.suppress(InfluxError):
                self._appraise(writer)

    def _dashboards(self, writer: InfluxHttp, console: Console) -> None:
        """The appraisal once more, and every dashboard query run on the demo's data."""
        first, after = self._days()
        month = self.scenario.start.strftime("%Y-%m")
        try:
            clerks = self._appraise(writer)
            outcomes = check.run(writer, TimeRange(first, after, {"month": month}))
        except InfluxError as e:
            console.print(f"dashboards: InfluxDB: {e}")
            return
        failed = sum(o.error is not None for o in outcomes)
        console.print(
            f"dashboards: {len(outcomes)} queries run on the demo's data, {failed} failed; "
            f"appraisal {month}: {clerks} clerks",
            highlight=False,
        )

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self.runner is not None:
            self.runner.stop_event.set()

    def _stored(self, writer: InfluxHttp) -> int:
        """Ratings of this run found in InfluxDB so far."""
        assert self.runner is not None
        self.runner.truth.flush()
        try:
            reports = verify.verify(self.truth_path, writer)
        except (InfluxError, ValueError):
            return 0
        return sum(r.expected - len(r.lost) for r in reports)

    def _summary(self, writer: InfluxHttp) -> str:
        assert self.runner is not None
        progress = self.runner.progress
        customers = sum(t.prompts for t in progress.tallies.values())
        stored = self._stored(writer)
        return (
            f"{live.status(progress)}\n"
            f"customers {customers}  recorded {progress.sent}  acked {progress.acked}  "
            f"stored {stored}"
        )
