"""The files that carry an account's password to its owner: a terminal's settings file (for
`svc-firmware deploy`) and a service's settings file. Written 0600; the password is nowhere
else but as a hash in the broker's password file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from broker.folder import BrokerSetupError, Folder


def device_settings(folder: Folder, site: str, device: str, password: str) -> dict[str, str]:
    """A terminal's settings for reaching the broker: its URL, the account and the CA."""
    return {
        "site": site,
        "device": device,
        "broker": folder.url,
        "broker_user": f"{site}/{device}",
        "broker_password": password,
        "broker_ca": folder.ca_cert.read_text(),
    }


def write_device(folder: Folder, site: str, device: str, password: str, out: Path) -> None:
    """The terminal's settings file: device_settings(), over any settings already in `out`
    (Wi-Fi, counter...), which are kept."""
    values: dict[str, object] = {}
    if out.exists():
        try:
            values = json.loads(out.read_text())
        except ValueError as e:
            raise BrokerSetupError(f"{out}: not a settings file: {e}") from None
    values.update(device_settings(folder, site, device, password))
    _secret(out, json.dumps(values, indent=2, ensure_ascii=False) + "\n")


def write_service(folder: Folder, name: str, password: str, out: Path) -> None:
    """A settings file in the collector's TOML (its keys are the SVC_ variables' names), which
    svc-collector reads as it is and the other tools read for the broker's address."""
    host = folder.hostname
    lines = [
        f"# {name}'s account on {folder.url}, written by svc-broker; keep it secret",
        f"mqtt_url = {json.dumps(f'mqtts://{name}:{password}@{host}:{folder.port}')}",
        f"mqtt_ca_file = {json.dumps(str(folder.ca_cert))}",
        f"client_id = {json.dumps(name)}",
    ]
    _secret(out, "\n".join(lines) + "\n")


def _secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
