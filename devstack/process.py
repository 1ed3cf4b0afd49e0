"""Start a server binary on a free loopback port and wait until it answers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

INSTALL_HINT = "run ./dev test (or: apt-get install -y mosquitto influxdb)"


class ServerFailedError(RuntimeError):
    """A server could not be started, with its log tail in the message."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, *extra_dirs: str) -> str:
    """The path of a server binary, or a clear error naming how to install it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs])
    path = shutil.which(name, path=search)
    if path is None:
        raise ServerFailedError(f"{name} not found on PATH or in {extra_dirs}: {INSTALL_HINT}")
    return path


class ChildServer:
    """A server process with a log file, started and stopped by its owner.

    Subclasses write the config for a given port and say how to tell it is ready.
    A start is retried on a new port when the process dies first (another run took the port).
    """

    name = "server"
    start_timeout_s = 30.0
    attempts = 5

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.log_path = data_dir / f"{self.name}.log"
        self.env: dict[str, str] | None = None  # the process's environment; None: this one's
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(self.attempts):
            port = self.port or free_port()
            if self._start_on(port):
                return
            self.port = 0
        raise ServerFailedError(f"{self.name} did not start: {self.log_tail()}")

    def _start_on(self, port: int) -> bool:
        self.port = port
        cmd = self.command(port)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        return wait_until(self.is_ready, self.start_timeout_s, self._proc.poll)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the port and data folder are kept."""
        if self._proc is not None:
            end_process(self._proc, self._proc.terminate, 10)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is saved on the way out."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def outage(self, down_s: float) -> None:
        """Down for down_s, then back on the same port and data folder (a fault drill)."""
        self.stop()
        time.sleep(down_s)
        self.restart()

    def freeze(self, frozen: bool) -> None:
        """Stop the process in its tracks (SIGSTOP) or let it go on (SIGCONT): its sockets stay
        open and answer nothing, as a hung host or a link dropping packets would."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def restart(self) -> None:
        """Start again on the same port and data folder (for outage tests)."""
        self.stop()
        if not self._start_on(self.port):
            raise ServerFailedError(f"{self.name} did not restart: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def end_process(proc: subprocess.Popen[bytes], ask: Callable[[], None], timeout_s: float) -> int:
    """Ask a process to end (ask()), kill it if it has not within timeout_s; its exit code."""
    if proc.poll() is None:
        try:
            ask()
            proc.wait(timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_until(
    ready: Callable[[], bool], timeout_s: float, exited: Callable[[], int | None]
) -> bool:
    """Poll ready() until it is true, the process exits, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if exited() is not None:
            return False
        if ready():
            return True
        time.sleep(0.05)
    return False


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
