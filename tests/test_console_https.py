"""The console over HTTPS with a certificate `svc-broker add-web` issued from the hall's CA,
and plain HTTP only on loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from broker.cli import main as svc_broker
from devstack import ConsoleServer, InfluxServer
from tests.console_stack import PASSWORD, add_user
from tests.hall import Hall
from tests.servers import running


def issue(hall: Hall, out: Path) -> tuple[Path, Path]:
    code = svc_broker(
        ["add-web", str(hall.folder.path), "--host", "localhost", "--out-dir", str(out)]
    )
    assert code == 0
    return out / "web.crt", out / "web.key"


def test_the_console_serves_https_with_the_halls_certificate(
    hall: Hall, influxdb: InfluxServer, tmp_path: Path
):
    cert, key = issue(hall, tmp_path / "tls")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    server = ConsoleServer(
        tmp_path / "console", tls_cert=str(cert), tls_key=str(key), influx_url=influxdb.url
    )
    (tmp_path / "console").mkdir()
    add_user(Path(server.settings["db"]), "admin", "admin", [])
    ca = str(hall.folder.ca_cert)
    with running(server):
        url = f"https://localhost:{server.port}"
        assert requests.get(f"{url}/login", verify=ca, timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):  # not another CA's
            requests.get(f"{url}/login", timeout=10)
        answer = requests.post(
            f"{url}/login", data={"name": "admin", "password": PASSWORD, "next": "/"},
            verify=ca, allow_redirects=False, timeout=10,
        )  # fmt: skip
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert all(flag in cookie for flag in ("httponly", "samesite=lax", "secure"))
        headers = requests.get(f"{url}/login", verify=ca, timeout=10).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"LISTEN": "0.0.0.0:8443"}, "plain HTTP is for loopback only"),
        ({"LISTEN": "127.0.0.1:8443", "TLS_CERT": "/x.crt"}, "go together"),
        ({"SMTP_URL": "smtp+plain://mail.example:25"}, "loopback only"),
        ({"TZ": "Mars/Olympus"}, "time zone"),
        ({"FIX_DAYS": "0"}, "1–60"),
    ],
)
def test_settings_it_cannot_use_stop_it_at_start_saying_why(
    tmp_path: Path, settings: dict[str, str], words: str
):
    env = {**os.environ, **{f"SVC_CONSOLE_{k}": v for k, v in settings.items()}}
    env["SVC_CONSOLE_DB"] = str(tmp_path / "console.db")
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "serve"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and len(done.stderr.splitlines()) == 1
