"""svc-console as a child process on a free loopback port, for tests, benchmarks and the demo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from devstack.process import ChildServer, port_open


class ConsoleServer(ChildServer):
    """The console over plain HTTP on loopback (HTTPS when tls_cert and tls_key are given),
    its settings as SVC_CONSOLE_ variables by their lower-case names, its database in
    data_dir unless given."""

    name = "console"

    def __init__(self, data_dir: Path, **settings: str) -> None:
        super().__init__(data_dir)
        self.settings = {"db": str(data_dir / "console.db"), "log_level": "debug", **settings}
        self.scheme = "https" if "tls_cert" in settings else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        self.env = {
            **os.environ,
            **{f"SVC_CONSOLE_{k.upper()}": v for k, v in self.settings.items()},
            "SVC_CONSOLE_LISTEN": f"127.0.0.1:{port}",
        }
        return [sys.executable, "-m", "console.cli", "serve"]

    def is_ready(self) -> bool:
        return port_open(self.port)  # uvicorn listens once the app has started
