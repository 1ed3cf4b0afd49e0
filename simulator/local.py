"""A broker, a database and a collector of the simulator's own, in one data folder."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from devstack import CollectorProcess, InfluxServer, MosquittoServer, collector_env
from firmware import contract

DATABASE = "service_quality"


class LocalStack:
    """Started on entry, every process stopped on exit, however the run ends."""

    def __init__(self, data_dir: Path, root: str = contract.ROOT, database: str = DATABASE) -> None:
        self.database = database
        self.broker = MosquittoServer(data_dir / "mosquitto")
        self.influx = InfluxServer(data_dir / "influxdb")
        self._collector_dir = data_dir / "collector"
        self._collector_env = collector_env(root, database, "svc-collector", http="127.0.0.1:0")
        self.collector: CollectorProcess | None = None
        self._stack = ExitStack()

    def __enter__(self) -> LocalStack:
        with ExitStack() as stack:
            for server in (self.broker, self.influx):
                server.start()
                stack.callback(server.stop)
            # made now: it takes the servers' ports, chosen when they start
            self.collector = CollectorProcess(
                self.broker, self.influx, self._collector_dir, self._collector_env
            )
            self.collector.start()
            stack.callback(self.collector.stop)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def restart_broker(self, down_s: float) -> None:
        """The fault drill's broker restart: down for down_s, then back on its port."""
        self.broker.outage(down_s)
