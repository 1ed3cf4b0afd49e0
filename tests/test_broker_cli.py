"""svc-broker as an installer runs it: the folder it writes, the files it hands out, and what
it refuses. (tests/test_broker_security.py starts the broker from such a folder.)"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

from cryptography import x509

from broker.folder import load
from firmware import contract
from fwtools.deploy import check_settings

SVC_BROKER = Path(sys.executable).parent / "svc-broker"


def svc_broker(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SVC_BROKER), *map(str, args)], capture_output=True, text=True, check=False
    )


def test_init_then_accounts_write_what_a_hall_needs_and_print_no_password(tmp_path: Path):
    folder = tmp_path / "svc"
    done = svc_broker("init", folder, "--listen", "0.0.0.0:8883", "--hostname", "broker.h1")
    assert done.returncode == 0, done.stderr
    assert "mqtts://broker.h1:8883" in done.stdout
    settings = tmp_path / "ev-03.json"
    settings.write_text(json.dumps({"wifi_ssid": "hall", "wifi_password": "w", "counter": "03"}))
    device = svc_broker("add-device", folder, "sjz-yuhua", "ev-a1b2c3", "--out", settings)
    service = svc_broker(
        "add-service", folder, "collector-1", "--role", "collector", "--out", tmp_path / "c.toml"
    )
    assert device.returncode == 0 and service.returncode == 0, device.stderr + service.stderr

    values = json.loads(settings.read_text())
    assert values["counter"] == "03" and values["wifi_ssid"] == "hall"  # kept
    assert values["broker"] == "mqtts://broker.h1:8883"
    assert values["broker_user"] == "sjz-yuhua/ev-a1b2c3"
    assert values["broker_ca"] == (folder / "ca.crt").read_text()
    check_settings(settings)  # svc-firmware deploy takes it as it is
    account = tomllib.loads((tmp_path / "c.toml").read_text())
    assert account["mqtt_url"].startswith("mqtts://collector-1:")
    assert account["mqtt_ca_file"] == str((folder / "ca.crt").resolve())
    passwords = [values["broker_password"], account["mqtt_url"].split(":")[2].split("@")[0]]
    assert all(len(p) >= 24 for p in passwords)
    for p in passwords:
        assert p not in device.stdout + device.stderr + service.stdout + service.stderr
        assert p not in (folder / "passwd").read_text()  # hashes only
        assert p not in (folder / "svc-broker.json").read_text()
    for secret in (settings, tmp_path / "c.toml", folder / "ca.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret

    state = load(folder)
    assert state.accounts == {"sjz-yuhua/ev-a1b2c3": "device", "collector-1": "collector"}
    assert (folder / "devices.txt").read_text().splitlines()[1:] == ["sjz-yuhua/ev-a1b2c3"]
    conf = (folder / "mosquitto.conf").read_text().splitlines()
    listener = conf.index("listener 8883 0.0.0.0")
    assert "allow_anonymous false" in conf[:listener]
    for option in ("certfile", "keyfile", "use_username_as_clientid"):  # after their listener
        assert next(n for n, line in enumerate(conf) if line.startswith(option)) > listener
    server = x509.load_pem_x509_certificate((folder / "server.crt").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.h1"]


def test_it_refuses_a_second_account_a_second_init_and_bad_names(tmp_path: Path):
    folder = tmp_path / "svc"
    assert svc_broker("init", folder, "--listen", "127.0.0.1:8883").returncode == 0
    out = tmp_path / "t.json"
    assert svc_broker("add-device", folder, "ha01", "t01", "--out", out).returncode == 0
    first = json.loads(out.read_text())["broker_password"]
    again = svc_broker("add-device", folder, "ha01", "t01", "--out", out)
    assert again.returncode == 2 and "--replace" in again.stderr
    assert json.loads(out.read_text())["broker_password"] == first
    replaced = svc_broker("add-device", folder, "ha01", "t01", "--out", out, "--replace")
    assert replaced.returncode == 0 and json.loads(out.read_text())["broker_password"] != first
    assert svc_broker("init", folder).returncode == 2
    bad = svc_broker("add-device", folder, "Ha 01", "t01", "--out", out)
    assert bad.returncode == 2 and contract.name_pattern("site") in bad.stderr
    assert (
        svc_broker("add-device", tmp_path / "nowhere", "ha01", "t1", "--out", out).returncode == 2
    )
