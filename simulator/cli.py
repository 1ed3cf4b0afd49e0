"""svc-sim: simulated terminals for demos, tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live

from collector.influx import InfluxError, InfluxWriter
from simulator import live, scenario, verify
from simulator.demo import Demo
from simulator.fidelity import FidelityRun
from simulator.local import DATABASE, LocalStack
from simulator.run import ScaleRun
from simulator.truth import GroundTruth

STORE_WAIT_S = 120.0  # after a local run: how long the collector may take to store the rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _demo_parser(
        commands.add_parser(
            "demo", help="local broker, database, collector and a small hall, with live figures"
        )
    )
    run = commands.add_parser(
        "run", help="a scenario's halls as virtual terminals (scale mode), with ground truth"
    )
    run.add_argument("scenario", help=f"a TOML file, or one of: {', '.join(scenario.names())}")
    run.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="the broker to send to")
    run.add_argument("--root", default="svc/v1", help="topic root")
    run.add_argument("--truth", type=Path, help="ground truth JSONL (default .run/<name>.jsonl)")
    run.add_argument("--speed", type=float, help="override the scenario's time acceleration")
    run.add_argument(
        "--mode",
        choices=["scale", "fidelity"],
        default="scale",
        help="virtual terminals in this process, or the real firmware, one process each",
    )
    run.add_argument(
        "--local",
        type=Path,
        metavar="DIR",
        help="start a broker, database and collector of its own in DIR, and verify at the end",
    )
    run.add_argument("--quiet", action="store_true", help="a status line every 10 s, for CI")
    check = commands.add_parser("verify", help="compare InfluxDB with a ground truth file")
    check.add_argument("truth", type=Path)
    check.add_argument("--influx", default="http://127.0.0.1:8086", help="InfluxDB HTTP API")
    check.add_argument("--db", default=DATABASE, help="database (or bucket)")
    check.add_argument("--token", default=None, help="API token (2.x/3.x)")
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "demo":
        try:
            demo = Demo(args.data_dir.resolve(), args.scenario, args.mode)
        except scenario.ScenarioError as e:
            console.print(f"svc-sim: {e}")
            return 2
        return demo.run(args.duration, args.quiet, console)
    if args.command == "verify":
        return _verify(args.truth, InfluxWriter(args.influx, args.db, args.token), console)
    return _run(args, console)


def _demo_parser(demo: argparse.ArgumentParser) -> None:
    demo.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    demo.add_argument("--scenario", default="small-hall", help="a scenario name or TOML file")
    demo.add_argument(
        "--mode", choices=["fidelity", "scale"], default="fidelity", help="real firmware or not"
    )
    demo.add_argument(
        "--data-dir", type=Path, default=Path(".run/demo"), help="where the servers keep files"
    )
    demo.add_argument(
        "--quiet", action="store_true", help="a status line every 10 s instead of the live table"
    )


def _run(args: argparse.Namespace, console: Console) -> int:
    try:
        chosen = scenario.load(args.scenario)
    except scenario.ScenarioError as e:
        console.print(f"svc-sim: {e}")
        return 2
    if args.speed is not None:
        chosen = scenario.Scenario(**{**chosen.__dict__, "speed": args.speed})
    truth_path = args.truth or Path(".run") / f"{chosen.name}.jsonl"
    if args.local is None:
        url = urlsplit(args.broker)
        broker = (url.hostname or "127.0.0.1", url.port or 1883)
        _show(_runner(args, chosen, broker, truth_path, None), args.quiet, console)
        console.print(f"ground truth: {truth_path}")
        return 0
    with LocalStack(args.local.resolve(), args.root) as local:
        console.print(f"broker {local.broker.url}  database {local.influx.url}/{local.database}")
        broker = ("127.0.0.1", local.broker.port)
        _show(_runner(args, chosen, broker, truth_path, local), args.quiet, console)
        writer = InfluxWriter(local.influx.url, local.database)
        give_up = time.monotonic() + STORE_WAIT_S
        while _differences(truth_path, writer) and time.monotonic() < give_up:
            time.sleep(1)
        return _verify(truth_path, writer, console)


Runner = ScaleRun | FidelityRun


def _runner(
    args: argparse.Namespace,
    chosen: scenario.Scenario,
    broker: tuple[str, int],
    truth_path: Path,
    local: LocalStack | None,
) -> Runner:
    restart = None if local is None else local.restart_broker
    truth = GroundTruth(truth_path)
    if args.mode == "scale":
        return ScaleRun(chosen, broker, args.root, truth, restart)
    workdir = (args.local or Path(".run")) / "terminals"
    return FidelityRun(
        chosen,
        f"mqtt://{broker[0]}:{broker[1]}",
        args.root,
        truth,
        workdir=workdir.resolve(),
        restart_broker=restart,
    )


def _show(run: Runner, quiet: bool, console: Console) -> None:
    """Run in a thread, drawing the live view here (or a status line every 10 s when quiet);
    Ctrl-C stops the run after the action in hand, and what was sent is still settled."""
    done = threading.Event()

    def play() -> None:
        try:
            if isinstance(run, ScaleRun):
                asyncio.run(run.run())
            else:
                run.run()
        finally:
            done.set()

    player = threading.Thread(target=play, name="run")
    player.start()
    live_view = None if quiet else Live(console=console, auto_refresh=False)
    with live_view or nullcontext():
        while not done.is_set():
            try:
                if live_view is None:
                    console.print(live.status(run.progress))
                else:
                    live_view.update(live.view(run.progress), refresh=True)
                done.wait(10 if live_view is None else 0.5)
            except KeyboardInterrupt:
                run.stop_event.set()
        player.join()
        if live_view is not None:
            live_view.update(live.view(run.progress), refresh=True)
    console.print(live.status(run.progress))


def _differences(truth_path: Path, writer: InfluxWriter) -> int:
    try:
        return sum(r.differences for r in verify.verify(truth_path, writer))
    except InfluxError:
        return -1


def _verify(truth_path: Path, writer: InfluxWriter, console: Console) -> int:
    try:
        reports = verify.verify(truth_path, writer)
    except (OSError, InfluxError) as e:
        console.print(f"svc-sim verify: {e}")
        return 2
    console.print(verify.table(reports), highlight=False)
    return 1 if any(r.differences for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
