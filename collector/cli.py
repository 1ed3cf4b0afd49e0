"""svc-collector: ratings, telemetry and state from MQTT into InfluxDB, exactly once."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import structlog

from collector import logs, metrics, settings
from collector.deadletter import DeadLetters
from collector.influx import InfluxHttp
from collector.service import Collector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-collector", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (also SVC_CONFIG)")
    args = parser.parse_args(argv)
    try:
        config = settings.load(config_file=args.config)
    except settings.SettingsError as e:
        print(f"svc-collector: {e}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    log = structlog.get_logger("collector")
    writer = InfluxHttp(config.influx_url, config.influx_db, config.influx_token)
    stats = metrics.Metrics()
    dead = DeadLetters(config.state_dir / "deadletter.jsonl", stats.rejected)
    collector = Collector(config, writer, dead, stats)
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
    influx = urlsplit(config.influx_url)  # a 1.x server's URL may carry a password: not logged
    where = f"{influx.scheme}://{influx.hostname}" + (f":{influx.port}" if influx.port else "")
    log.info("starting", mqtt=f"{config.mqtt.host}:{config.mqtt.port}", influx=where)
    collector.run()
    return 1 if collector.failed else 0


if __name__ == "__main__":
    sys.exit(main())
