"""The hall console beside the demo's broker, database and collector.

It runs under its own broker account, as a hall runs it (docs/install.md), on a free loopback
port; its database knows the scenario's halls, their counters and terminals, and the clerks'
names, as a hall manager would have entered them, and one demo login (a new password each
run, printed). Its cases come from the collector's alerts while the demo plays.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from broker import credentials
from collector.influx import InfluxHttp
from console import db, roster, users
from devstack import ConsoleServer, HallBroker, InfluxServer
from simulator.scenario import Scenario

ACCOUNT = "svc-console"
DEMO_USER = "demo"
SEEDED_BY = "svc-sim"
CASES_WAIT_S = 15.0


def start(
    data_dir: Path, chosen: Scenario, broker: HallBroker, influx: InfluxServer, database: str
) -> tuple[ConsoleServer, str]:
    """The console started (stop it after); and the demo login's password."""
    folder = data_dir / "console"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    account = folder / "account.toml"
    credentials.add_service(broker.folder, ACCOUNT, "console", account, replace=True)
    broker.reload()
    server = ConsoleServer(
        folder,
        config=str(account),
        influx_url=influx.url,
        influx_db=database,
        reconcile_s="10",
        log_level="info",
    )
    password = secrets.token_urlsafe(12)
    _seed(Path(server.settings["db"]), chosen, password)
    InfluxHttp(influx.url, database).ensure_database()
    server.start()
    return server, password


def _seed(path: Path, chosen: Scenario, password: str) -> None:
    """The scenario's halls as their managers would have set them up in the console."""
    with closing(db.connect(path)) as conn:  # a new one each run (demo.RUN_ENTRIES)
        users.add(conn, DEMO_USER, "admin", [], password=password, actor=SEEDED_BY)
        for hall in chosen.halls:
            for counter in hall.counters:
                roster.set_counter(conn, hall.site, counter.counter, counter.device, SEEDED_BY)
            for clerk in hall.clerks:
                roster.save_clerk(conn, clerk.staff, clerk.name, None, SEEDED_BY)


def summary(server: ConsoleServer, influx: InfluxHttp) -> str:
    """The console's cases against the poor ratings InfluxDB holds, once they agree (the
    alerts make cases at once, the reconciliation any an alert missed) or CASES_WAIT_S on."""
    deadline = time.monotonic() + CASES_WAIT_S
    while True:
        rows = influx.query('SELECT count("score") FROM "rating" WHERE "poor" = 1')
        poor = int(rows[0]["count"]) if rows else 0
        with closing(sqlite3.connect(server.settings["db"])) as conn:
            cases = int(conn.execute("SELECT count(*) FROM poor_case").fetchone()[0])
        if cases == poor or time.monotonic() > deadline:
            return f"hall console: {cases} cases for {poor} poor ratings stored"
        time.sleep(0.5)
