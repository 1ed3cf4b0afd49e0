"""The console as a hall runs it, for the browser tests: the hall's broker (svc-broker's
folder: TLS, an account each, the ACL), InfluxDB, a collector, and `svc-console serve` as its
own process under its own broker account; its users made with `svc-console add-user`; and a
real Chromium driven by Playwright.

Screenshots go to test-artefacts/console/ at the top of the checkout, to be looked at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from console import db, users
from devstack import CollectorProcess, ConsoleServer, InfluxServer, collector_env
from firmware import contract
from simulator.terminal_process import FirmwareTerminal
from tests.hall import COLLECTOR, SITE, Hall, Peer
from tests.servers import serve
from tests.test_firmware_tls import KEPT

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "console"
CHROMIUM = os.environ.get("SVC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root, in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CONSOLE = "console-1"
PASSWORD = "correct horse battery"
USERS = {  # name: (role, sites)
    "wang": ("manager", [SITE]),
    "zhao": ("manager", ["hb02"]),
    "liu": ("appraiser", []),
    "admin": ("admin", []),
}


@dataclass
class ConsoleStack:
    hall: Hall
    influx: InfluxServer
    database: str
    collector: CollectorProcess
    console: ConsoleServer
    folder: Path
    terminals: list[FirmwareTerminal] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.console.url

    def terminal(self, device: str, **changes: Any) -> FirmwareTerminal:
        """A real terminal of the hall (the firmware under the MicroPython Unix port), started
        and connected; stopped with the stack."""
        out = self.hall.add_device(SITE, device, **KEPT)
        terminal = FirmwareTerminal(
            self.folder / device, {**json.loads(out.read_text()), **changes}
        )
        terminal.start()
        self.terminals.append(terminal)
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30)
        return terminal

    def device_peer(self, device: str) -> Peer:
        """A device's own account as a plain MQTT client, for what a terminal sends that a
        test must craft (a press time in the past, a prompt's wait)."""
        self.hall.add_device(SITE, device)
        peer = Peer(self.hall, f"{SITE}/{device}", client_id=f"{SITE}/{device}")
        assert peer.connect(), peer.refusal
        return peer

    def query(self, q: str) -> list[dict[str, Any]]:
        return self.influx.query(q, self.database)


def add_user(db: Path, name: str, role: str, sites: list[str]) -> None:
    command = [sys.executable, "-m", "console.cli", "--db", str(db), "add-user", name]
    command += ["--role", role, *(a for s in sites for a in ("--site", s))]
    subprocess.run(command, input=PASSWORD + "\n", text=True, check=True, capture_output=True)


@pytest.fixture
def console_stack(
    hall: Hall, influxdb: InfluxServer, database: str, tmp_path: Path
) -> Iterator[ConsoleStack]:
    collector_account = hall.add_service(COLLECTOR, "collector")
    env = collector_env(contract.ROOT, database, COLLECTOR, collector_account, batch_linger_ms="50")
    collector = CollectorProcess(hall.broker, influxdb, tmp_path / "collector", env)
    collector.start()
    account = hall.add_service(CONSOLE, "console")
    server = ConsoleServer(
        tmp_path / "console",
        config=str(account),
        influx_url=influxdb.url,
        influx_db=database,
        reconcile_s="2",
        public_url="http://console.test",
    )
    (tmp_path / "console").mkdir()
    with closing(db.connect(Path(server.settings["db"]))) as conn:  # as add-user does (its own
        for name, (role, sites) in USERS.items():  # test runs it): one process, not four
            users.add(conn, name, role, sites, password=PASSWORD, actor="test")
    stack = ConsoleStack(hall, influxdb, database, collector, server, tmp_path)
    try:
        for _ in serve(server):
            yield stack
    finally:
        for terminal in stack.terminals:
            terminal.stop()
        collector.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A Chromium of the test's own: Playwright's sync API runs an event loop in this thread
    while it lives, which would stop a later test's asyncio.run."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run ./dev test (it installs chromium)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def log_in(page: Page, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def keep(page: Page, name: str) -> Path:
    """A screenshot of the whole page, kept as an artefact."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
