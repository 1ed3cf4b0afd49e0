"""svc-sim: simulated terminals for demos, tests and benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from broker.folder import BrokerSetupError
from broker.folder import load as load_folder
from collector.influx import InfluxError, InfluxHttp
from collector.settings import SettingsError
from firmware import contract
from simulator import access, scenario, session, verify
from simulator.demo import Demo
from simulator.local import DATABASE, LocalStack
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
    run.add_argument(
        "--broker",
        help="the broker to send to (default mqtt://127.0.0.1:1883, anonymously in the clear; "
        "with --broker-dir, the URL in its set-up)",
    )
    hall = run.add_mutually_exclusive_group()
    hall.add_argument(
        "--broker-dir",
        type=Path,
        metavar="DIR",
        help="a hall's broker set up by svc-broker init: an account there for each terminal and "
        "the front desk, made for the run and removed after it; verified against --influx",
    )
    hall.add_argument(
        "--accounts",
        type=Path,
        metavar="FOLDER",
        help="accounts made beforehand: SITE-DEVICE.json per terminal (svc-broker add-device) "
        "and desk.toml (add-service --role tools); verified against --influx",
    )
    run.add_argument("--influx", default="http://127.0.0.1:8086", help="the hall's InfluxDB")
    run.add_argument("--db", default=DATABASE, help="its database (or bucket)")
    run.add_argument("--token", default=None, help="its API token (2.x/3.x)")
    run.add_argument("--root", default=contract.ROOT, help="topic root")
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
        return _verify(args.truth, InfluxHttp(args.influx, args.db, args.token), console)
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
        "--data-dir",
        type=Path,
        default=Path(".run/demo"),
        help="where the servers keep files (each run starts afresh there)",
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
    workdir = (args.local or Path(".run")) / "terminals"
    if args.broker_dir or args.accounts:
        return _run_in_hall(args, chosen, truth_path, workdir, console)
    if args.local is None:
        run = session.runner(
            args.mode,
            chosen,
            access.plain(args.broker or "mqtt://127.0.0.1:1883"),
            args.root,
            GroundTruth(truth_path),
            workdir=workdir,
            restart_broker=None,
        )
        session.play(run, console, quiet=args.quiet)
        console.print(f"ground truth: {truth_path}")
        return 0
    with LocalStack(args.local.resolve(), args.root) as local:
        console.print(f"broker {local.broker.url}  database {local.influx.url}/{local.database}")
        run = session.runner(
            args.mode,
            chosen,
            local.access((c.site, c.device) for c in chosen.counters),
            args.root,
            GroundTruth(truth_path),
            workdir=workdir,
            restart_broker=local.restart_broker,
        )
        session.play(run, console, quiet=args.quiet)
        writer = InfluxHttp(local.influx.url, local.database)
        verify.settled(truth_path, writer, STORE_WAIT_S)
        return _verify(truth_path, writer, console)


def _run_in_hall(
    args: argparse.Namespace,
    chosen: scenario.Scenario,
    truth_path: Path,
    workdir: Path,
    console: Console,
) -> int:
    """A hall's own broker, each terminal and the desk with an account there, verified against
    the hall's InfluxDB: an installer's acceptance test before the terminals arrive."""
    devices = [(c.site, c.device) for c in chosen.counters]
    try:
        if args.broker_dir is not None:
            folder = load_folder(args.broker_dir)
            given = access.hall(folder, devices, args.broker, fresh=True)
        else:
            given = access.from_files(args.accounts, devices, args.broker)
    except (BrokerSetupError, SettingsError, OSError) as e:
        console.print(f"svc-sim: {e}", highlight=False)
        return 2
    try:
        if given.folder is not None:
            given.folder.reload()
        console.print(f"broker {given.url}  database {args.influx}/{args.db}", highlight=False)
        run = session.runner(
            args.mode,
            chosen,
            given,
            args.root,
            GroundTruth(truth_path),
            workdir=workdir,
            restart_broker=None,
        )
        session.play(run, console, quiet=args.quiet)
        writer = InfluxHttp(args.influx, args.db, args.token)
        verify.settled(truth_path, writer, STORE_WAIT_S)
        return _verify(truth_path, writer, console)
    finally:
        removed = given.release()
        if removed:
            console.print(f"the {len(removed)} accounts made for the run removed", highlight=False)


def _verify(truth_path: Path, writer: InfluxHttp, console: Console) -> int:
    try:
        reports = verify.verify(truth_path, writer)
    except (OSError, InfluxError) as e:
        console.print(f"svc-sim verify: {e}")
        return 2
    console.print(verify.table(reports), highlight=False)
    return 1 if any(r.differences for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
