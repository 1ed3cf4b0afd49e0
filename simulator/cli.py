"""svc-sim: simulated terminals for demos, tests and benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from simulator.demo import Demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="local broker, database, collector and a small hall, with live figures"
    )
    demo.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    demo.add_argument("--terminals", type=int, default=4, help="terminals (counters) in the hall")
    demo.add_argument(
        "--mean-gap", type=float, default=4.0, help="mean seconds between customers per counter"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".run/demo"),
        help="where every server keeps its files",
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed for the customers")
    demo.add_argument(
        "--quiet", action="store_true", help="a status line every 10 s instead of the live table"
    )
    args = parser.parse_args(argv)

    console = Console()
    Demo(args.data_dir.resolve(), args.terminals, args.mean_gap, args.seed).run(
        args.duration, args.quiet, console
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
