"""`svc-sim run` against a hall's own broker, as an installer runs it before the terminals
arrive: a broker set up by svc-broker init (TLS, an account each, the ACL), its collector under
its own account, its InfluxDB; the simulator's terminals and front desk log in with accounts of
their own, made for the run and removed after it (`--broker-dir`) or made beforehand
(`--accounts`), and the run is verified against the hall's database."""

from __future__ import annotations

from pathlib import Path

from broker import credentials
from broker.folder import load
from collector.influx import InfluxHttp
from devstack import InfluxServer
from simulator import access, cli, scenario, truth, verify
from tests.hall import COLLECTOR, Hall
from tests.test_simulator_scale import HALL

CLERKS = """
clerks = [{ staff = "E2001", name = "赵敏", profile = "mixed", shifts = ["09:00-10:00"] }]
"""


def hall_scenario(tmp_path: Path) -> tuple[Path, scenario.Scenario]:
    path = tmp_path / "acceptance.toml"
    text = HALL.format(site="sim-hall", counters=3, extra=CLERKS, speed=0, per_hour=40)
    path.write_text(text)
    return path, scenario.load(path)


def run_args(path: Path, tmp_path: Path, influxdb: InfluxServer, database: str) -> list[str]:
    return [
        "run",
        str(path),
        "--truth",
        str(tmp_path / "truth.jsonl"),
        "--influx",
        influxdb.url,
        "--db",
        database,
        "--quiet",
    ]


def every_rating_stored_once(tmp_path: Path, influxdb: InfluxServer, database: str) -> None:
    sent = truth.read(tmp_path / "truth.jsonl")
    reports = verify.verify(tmp_path / "truth.jsonl", InfluxHttp(influxdb.url, database))
    assert sum(r.expected for r in reports) == len(sent) > 50
    assert not any(r.differences for r in reports), verify.table(reports)


def test_with_the_brokers_folder_it_makes_its_accounts_verifies_and_removes_them(
    hall: Hall, hall_collector, influxdb, database, tmp_path, capsys
):
    hall.add_device("sim-hall", "t99")  # a real terminal's account, kept as it is
    before = (hall.folder.path / "passwd").read_text()
    path, chosen = hall_scenario(tmp_path)
    args = run_args(path, tmp_path, influxdb, database)
    assert cli.main([*args, "--broker-dir", str(hall.folder.path)]) == 0
    assert "accounts made for the run removed" in capsys.readouterr().out
    every_rating_stored_once(tmp_path, influxdb, database)
    after = load(hall.folder.path)
    assert set(after.accounts) == {COLLECTOR, "sim-hall/t99"}
    assert (hall.folder.path / "passwd").read_text() == before
    names = (hall.folder.path / "devices.txt").read_text()
    assert all(f"{c.site}/{c.device}" not in names for c in chosen.counters)


def test_it_never_takes_an_account_a_real_terminal_has(hall: Hall, influxdb, database, tmp_path):
    path, chosen = hall_scenario(tmp_path)
    first = chosen.counters[0]
    hall.add_device(first.site, first.device)
    before = (hall.folder.path / "passwd").read_text()
    args = run_args(path, tmp_path, influxdb, database)
    assert cli.main([*args, "--broker-dir", str(hall.folder.path)]) == 2
    assert (hall.folder.path / "passwd").read_text() == before  # its password untouched
    assert set(load(hall.folder.path).accounts) == {f"{first.site}/{first.device}"}


def test_with_accounts_made_beforehand_it_verifies_and_leaves_them(
    hall: Hall, hall_collector, influxdb, database, tmp_path
):
    path, chosen = hall_scenario(tmp_path)
    folder = tmp_path / "accounts"
    for c in chosen.counters:  # as an installer makes them: svc-broker add-device --out
        credentials.add_device(hall.folder, c.site, c.device, folder / f"{c.site}-{c.device}.json")
    credentials.add_service(hall.folder, "desk-1", "tools", folder / access.DESK_FILE)
    hall.folder.reload()
    args = run_args(path, tmp_path, influxdb, database)
    assert cli.main([*args, "--accounts", str(folder)]) == 0
    every_rating_stored_once(tmp_path, influxdb, database)
    kept = load(hall.folder.path).accounts
    assert {f"{c.site}/{c.device}" for c in chosen.counters} | {"desk-1"} <= set(kept)
