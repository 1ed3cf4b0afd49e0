"""svc-broker as an installer runs it: the folder it writes, the files it hands out, and what
it refuses. (tests/test_broker_security.py starts the broker from such a folder.)"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography import x509

from broker import credentials, pki
from broker.folder import BrokerSetupError, load
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
    # a rotation: the new password on the terminal's other account, the present one kept
    assert json.loads(out.read_text())["broker_user"] == "ha01/t01/2"
    assert (
        "ha01/t01" in load(folder).accounts
        and "ha01/t01/2" not in (folder / "devices.txt").read_text().split()
    )
    assert svc_broker("init", folder).returncode == 2
    bad = svc_broker("add-device", folder, "Ha 01", "t01", "--out", out)
    assert bad.returncode == 2 and contract.name_pattern("site") in bad.stderr
    assert (
        svc_broker("add-device", tmp_path / "nowhere", "ha01", "t1", "--out", out).returncode == 2
    )


def test_the_folder_lets_every_user_read_what_is_public_and_nothing_secret(tmp_path: Path):
    folder = tmp_path / "svc"
    assert svc_broker("init", folder, "--hostname", "broker.h1").returncode == 0
    out = tmp_path / "c.toml"
    done = svc_broker(
        "add-service", folder, "c1", "--role", "collector", "--owner", "nobody", "--out", out
    )
    assert done.returncode == 0, done.stderr
    account = tomllib.loads(out.read_text())
    assert account["known_devices"] == str((folder / "devices.txt").resolve())
    assert (
        out.stat().st_uid == pwd.getpwnam("nobody").pw_uid
        and stat.S_IMODE(out.stat().st_mode) == 0o600
    )
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.is_file()}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for public in ("ca.crt", "server.crt", "devices.txt"):
        assert modes.pop(public) == 0o644, public
    assert all(mode & 0o007 == 0 for mode in modes.values()), modes  # the rest closed to others
    nobody = svc_broker(
        "add-service",
        folder,
        "c2",
        "--role",
        "collector",
        "--owner",
        "nobody-at-all",
        "--out",
        tmp_path / "x.toml",
    )
    assert nobody.returncode == 2 and "no such user" in nobody.stderr
    assert "c2" not in load(folder).accounts  # refused before any account was made


def test_rewrite_brings_a_folder_of_an_older_version_up_to_date(tmp_path: Path):
    folder = tmp_path / "svc"
    assert svc_broker("init", folder, "--hostname", "broker.h1").returncode == 0
    assert (
        svc_broker(
            "add-service", folder, "t1", "--role", "tools", "--out", tmp_path / "t.toml"
        ).returncode
        == 0
    )
    acl = (folder / "acl").read_text()
    (folder / "acl").write_text(acl.replace("topic read svc/v1/+/+/state\n", ""))  # as before #19
    folder.chmod(0o750)
    done = svc_broker("rewrite", folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "acl").read_text() == acl
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert svc_broker("rewrite", tmp_path / "none").returncode == 2


def test_renew_gives_a_new_server_certificate_the_same_ca_and_names_accept(tmp_path: Path):
    folder = tmp_path / "svc"
    assert (
        svc_broker("init", folder, "--listen", "10.0.0.5:8883", "--hostname", "b.h1").returncode
        == 0
    )
    old_cert, old_key = (folder / "server.crt").read_bytes(), (folder / "server.key").read_bytes()
    done = svc_broker("renew", folder)
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate((folder / "server.crt").read_bytes())
    assert (folder / "server.key").read_bytes() != old_key
    assert cert.serial_number != x509.load_pem_x509_certificate(old_cert).serial_number
    assert pki.names_of((folder / "server.crt").read_bytes()) == pki.names_of(old_cert)
    assert pki.names_of(old_cert) == ["b.h1", "10.0.0.5"]
    ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)  # every client that trusts the CA takes it
    assert f"valid until {cert.not_valid_after_utc:%Y-%m-%d}" in done.stdout
    assert stat.S_IMODE((folder / "server.key").stat().st_mode) == 0o640


def test_a_link_planted_where_a_settings_file_is_written_is_never_followed(tmp_path: Path):
    folder = tmp_path / "svc"
    assert svc_broker("init", folder, "--hostname", "b.h1").returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("root's own")
    victim.chmod(0o644)
    out = tmp_path / "shared" / "c.toml"
    out.parent.mkdir()
    for guess in (".c.toml.tmp", ".c.toml.", "c.toml.tmp"):
        (out.parent / guess).symlink_to(victim)
    done = svc_broker("add-service", folder, "c1", "--role", "collector", "--out", out)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "root's own" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert tomllib.loads(out.read_text())["client_id"] == "c1"


def test_owner_needs_root_and_is_refused_before_any_account(tmp_path: Path, monkeypatch):
    folder = tmp_path / "svc"
    assert svc_broker("init", folder, "--hostname", "b.h1").returncode == 0
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as a user other than root
    with pytest.raises(BrokerSetupError, match="only root"):
        credentials.add_service(load(folder), "c1", "collector", tmp_path / "c.toml", owner="root")
    assert "c1" not in load(folder).accounts
    assert not (tmp_path / "c.toml").exists()
