"""An InfluxDB 1.x server on a loopback port with its data in its own folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from collector.influx import InfluxHttp
from devstack.process import ChildServer, find_binary, free_port


class InfluxServer(ChildServer):
    name = "influxdb"
    start_timeout_s = 60.0

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.binary = find_binary("influxd", "/usr/bin")
        self.rpc_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        if not self.rpc_port:
            self.rpc_port = free_port()
        conf = self.data_dir / "influxdb.conf"
        conf.write_text(self.config(port))
        return [self.binary, "run", "-config", str(conf)]

    def config(self, port: int) -> str:
        d = self.data_dir
        return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d}/meta"

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"""

    def is_ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except requests.RequestException:
            return False

    def query(self, q: str, db: str = "service_quality") -> list[dict[str, Any]]:
        """Rows of an InfluxQL query, times in ns."""
        return InfluxHttp(self.url, db).query(q)
