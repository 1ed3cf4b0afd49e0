"""svc-collector as a child process, pointed at a local broker and database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from collector.settings import from_toml
from devstack.influxdb import InfluxServer
from devstack.mosquitto import HallBroker, MosquittoServer
from devstack.process import ServerFailedError, end_process


def collector_env(
    root: str, database: str, client_id: str, account: Path | None = None, **settings: str
) -> dict[str, str]:
    """The collector's environment for one topic root and database: the broker account's
    settings file if given (svc-broker add-service: URL, CA, client id), then its settings by
    their lower-case names (batch_linger_ms="50"), the /metrics address none unless given."""
    env = {
        "SVC_TOPIC_ROOT": root,
        "SVC_INFLUX_DB": database,
        "SVC_CLIENT_ID": client_id,
        "SVC_HTTP": "",
    }
    if account is not None:
        env.update(from_toml(account))
    env.update({f"SVC_{name.upper()}": value for name, value in settings.items()})
    return env


class CollectorProcess:
    def __init__(
        self,
        broker: MosquittoServer | HallBroker,
        influx: InfluxServer,
        state_dir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir / "collector.log"
        self.env = {
            **os.environ,
            "SVC_MQTT_URL": broker.url,
            "SVC_INFLUX_URL": influx.url,
            "SVC_STATE_DIR": str(state_dir),
            **(extra_env or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        """Start and wait until its subscription is in place (its log says so)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        before = self.log().count('"event": "subscribed"')  # the log is kept across restarts
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "collector.cli"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if not self.wait_logged("subscribed", before + 1, timeout_s):
            raise ServerFailedError(f"collector did not subscribe: {self.log()[-2000:]}")

    def wait_logged(self, event: str, count: int = 1, timeout_s: float = 20.0) -> bool:
        """Wait until the log has `count` lines of this event; False on time-out or exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log().count(f'"event": "{event}"') >= count:
                return True
            if self._proc is None or self._proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code (killed: negative)."""
        if self._proc is None:
            return 0
        code = end_process(self._proc, self._proc.terminate, timeout_s)
        self._proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: the collector dies mid-whatever, as in a crash."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the collector is not running")
        return self._proc.pid

    def http_address(self) -> str:
        """host:port of /metrics and /healthz, from the log (SVC_HTTP may ask for any port)."""
        for line in reversed(self.log().splitlines()):
            if '"event": "http_listening"' in line:
                return str(json.loads(line)["address"])
        raise ServerFailedError("the collector logged no http_listening")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
