"""svc-collector: ratings, telemetry and state from MQTT into InfluxDB, exactly once."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import structlog

from collector import latest, logs, metrics, preflight, settings
from collector.deadletter import DeadLetters
from collector.influx import InfluxError, InfluxHttp
from collector.service import Collector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-collector", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (also SVC_CONFIG)")
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", "latest"),
        default="run",
        help="run: the service (the default); latest: print the newest stored ratings",
    )
    parser.add_argument("-n", type=int, default=20, help="latest: how many ratings (20)")
    args = parser.parse_args(argv)
    try:
        config = settings.load(config_file=args.config)
    except settings.SettingsError as e:
        print(f"svc-collector: {e}", file=sys.stderr)
        return 2
    if args.command == "latest":
        return _latest(config, args.n)
    if found := preflight.problems(config):
        return _refuse(found)
    logs.configure(config.log_level)
    log = structlog.get_logger("collector")
    writer = InfluxHttp(config.influx_url, config.influx_db, config.influx_token)
    stats = metrics.Metrics()
    dead = DeadLetters(config.state_dir / "deadletter.jsonl", stats.rejected)
    try:
        collector = Collector(config, writer, dead, stats)
    except OSError as e:  # what changed since the checks: the roster, the CA, the spool
        return _refuse([preflight.startup_problem(e, str(e.filename or "its files"))])
    if config.http:
        try:
            metrics.serve(config.http, stats, collector.health)
        except OSError as e:
            log.error("http_unavailable", address=config.http, error=str(e))
            return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        collector.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    where = _where(config.influx_url)
    log.info("starting", mqtt=f"{config.mqtt.host}:{config.mqtt.port}", influx=where)
    collector.run()
    return 1 if collector.failed else 0


def _refuse(found: list[preflight.Problem]) -> int:
    """One line each; 2 when only a person can mend them (systemd then stops restarting)."""
    for problem in found:
        print(f"svc-collector: {problem.text}", file=sys.stderr)
    return 2 if all(problem.setup for problem in found) else 1


def _latest(config: settings.Settings, count: int) -> int:
    influx = InfluxHttp(config.influx_url, config.influx_db, config.influx_token)
    try:
        found = latest.rows(influx, max(count, 1))
    except InfluxError as e:
        print(f"svc-collector: InfluxDB at {_where(config.influx_url)}: {e}", file=sys.stderr)
        return 1
    if not found:
        print(f"no rating stored in {config.influx_db} yet")
        return 0
    print(latest.table(found))
    return 0


def _where(url: str) -> str:
    """An InfluxDB URL without what it may carry of a password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


if __name__ == "__main__":
    sys.exit(main())
