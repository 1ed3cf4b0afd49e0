"""A broker, a database and a collector of the simulator's own, in one data folder.

The broker is set up as a hall's is (svc-broker, docs/install.md): TLS only, the collector,
the front desk and every terminal with an account of its own, the ACL in force.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from broker import credentials
from broker.folder import STATE, Folder, init, load
from devstack import CollectorProcess, HallBroker, InfluxServer, collector_env
from firmware import contract
from simulator import access

DATABASE = "service_quality"
COLLECTOR_ACCOUNT = "svc-collector"


class LocalStack:
    """Started on entry, every process stopped on exit, however the run ends."""

    def __init__(self, data_dir: Path, root: str = contract.ROOT, database: str = DATABASE) -> None:
        self.root = root
        self.database = database
        self.broker = HallBroker(_broker_folder(data_dir / "broker", root))
        self.influx = InfluxServer(data_dir / "influxdb")
        self._collector_dir = data_dir / "collector"
        self.collector: CollectorProcess | None = None
        self._stack = ExitStack()

    def __enter__(self) -> LocalStack:
        with ExitStack() as stack:
            for server in (self.broker, self.influx):
                server.start()
                stack.callback(server.stop)
            # made now: its URL has the broker's port, chosen when it started
            folder = self.broker.folder
            account = self._collector_dir / "account.toml"
            credentials.add_service(folder, COLLECTOR_ACCOUNT, "collector", account, replace=True)
            self.broker.reload()
            env = collector_env(
                self.root,
                self.database,
                COLLECTOR_ACCOUNT,
                account,
                http="127.0.0.1:0",
                known_devices=str(folder.path / "devices.txt"),
            )
            self.collector = CollectorProcess(self.broker, self.influx, self._collector_dir, env)
            self.collector.start()
            stack.callback(self.collector.stop)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def access(self, devices: Iterable[tuple[str, str]]) -> access.Access:
        """Accounts for these terminals and the front desk, in force once this returns."""
        given = access.hall(self.broker.folder, devices)
        self.broker.reload()
        return given

    def restart_broker(self, down_s: float) -> None:
        """The fault drill's broker restart: down for down_s, then back on its port."""
        self.broker.outage(down_s)


def _broker_folder(path: Path, root: str) -> Folder:
    """The broker's set-up, made on the first run. Mosquitto runs as whoever runs this: as
    root it would drop to its own user, who may not reach a folder under root's home."""
    if (path / STATE).exists():
        return load(path)
    user = pwd.getpwuid(os.geteuid()).pw_name
    return init(path, "127.0.0.1:8883", "localhost", root, user)
