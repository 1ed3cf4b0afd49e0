"""The README's main job, bounded by --duration: ratings arrive and every process ends."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devstack.process import port_open
from simulator import truth
from simulator.demo import clear_previous_run

SVC_SIM = Path(sys.executable).parent / "svc-sim"


@pytest.mark.parametrize("mode", ["fidelity", "scale"])
def test_demo_stores_every_press_and_cleans_up(tmp_path, micropython, mode):
    """Either mode, on a hall's broker as svc-broker sets one up: scale mode's terminals speak
    TLS through CPython's ssl, fidelity mode's through MicroPython's."""
    result = subprocess.run(
        [
            str(SVC_SIM),
            "demo",
            "--mode",
            mode,
            "--duration",
            "15",
            "--quiet",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    finals = re.findall(r"customers (\d+)\s+recorded (\d+)\s+acked (\d+)\s+stored (\d+)", output)
    customers, recorded, acked, stored = map(int, finals[-1])
    assert customers >= 3
    assert customers == recorded == acked == stored  # every customer's window, rated or skipped
    assert "broker mqtts://localhost:" in output  # the hall's set-up: TLS, accounts, ACL
    ports = {int(p) for p in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", output)}
    assert len(ports) == 3  # the broker, InfluxDB and the console
    assert not any(port_open(port) for port in ports)
    assert "every process started by the demo has ended" in output
    assert "lost 0, doubled 0, wrong 0, unexpected 0" in output
    # the dashboards: where Grafana finds them, every query run on the demo's data
    assert "dashboards/provisioning" in output
    assert re.search(r"dashboards: \d+ queries run on the demo's data, 0 failed", output)
    assert "/d/svc-hall-live?from=" in output
    # the hall console: its address and a login, and a case for every poor rating stored
    assert re.search(r"Hall console http://127\.0\.0\.1:\d+\s+login demo / \S+", output)
    cases, poor = map(int, re.findall(r"hall console: (\d+) cases for (\d+) poor", output)[-1])
    assert cases == poor
    # the roster's clerks were logged in through the retained config: each rating is theirs
    sent = truth.read(tmp_path / "demo" / "truth.jsonl")
    assert all(r["staff"] == r["clerk"] for r in sent)
    assert {r["staff"] for r in sent} >= {"E1001", "E1002", "E1003"}
    # the demo's data stays in its one folder
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {
        "broker",
        "influxdb",
        "collector",
        "console",
        "truth.jsonl",
        *(["terminals"] if mode == "fidelity" else []),
    }
    # every terminal logged in with its own account, and no password is in any log
    demo = tmp_path / "demo"
    settings = [json.loads(p.read_text()) for p in demo.glob("terminals/*/*/settings.json")]
    assert len(settings) == len({s["broker_user"] for s in settings}) >= 3 * (mode == "fidelity")
    secrets = [s["broker_password"] for s in settings]
    for service in ("collector", "console"):
        account = tomllib.loads((demo / service / "account.toml").read_text())
        secrets.append(urlsplit(account["mqtt_url"]).password)
    logs = [output, *(p.read_text() for p in demo.rglob("*.log"))]
    logs += [p.read_text() for p in demo.rglob("*.jsonl") if p.name != "truth.jsonl"]
    assert not [s for s in secrets for text in logs if s in text]


def test_a_demo_run_starts_afresh_and_leaves_the_rest_of_its_folder_alone(tmp_path):
    """A second run in the same folder would find the first run's ratings unexpected."""
    for name in ("broker", "influxdb", "collector", "console", "terminals"):
        (tmp_path / name / "sub").mkdir(parents=True)
    (tmp_path / "truth.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "keep").mkdir()
    clear_previous_run(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"notes.txt", "keep"}
    clear_previous_run(tmp_path)  # and nothing to clear is no error
