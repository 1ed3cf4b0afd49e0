"""The files that carry an account's password to its owner: a terminal's settings file (for
`svc-firmware deploy`) and a service's settings file. Written 0600; the password is nowhere
else but as a hash in the broker's password file."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

from broker.folder import BrokerSetupError, Folder, write_file
from fwtools.unix_port import firmware_module

# The keys of a terminal's settings file that svc-broker writes, as its firmware names them.
ACCOUNT_KEYS: tuple[str, ...] = firmware_module("settings").ACCOUNT_KEYS


def add_device(folder: Folder, site: str, device: str, out: Path, replace: bool = False) -> str:
    """The terminal's account, and its settings file (write_device); returns the password.
    replace: a new password, on the terminal's other account (Folder.rotate_device), the one
    it uses kept. A running broker takes it once reloaded."""
    name = f"{site}/{device}"
    if replace and name in folder.accounts:
        user, password = folder.rotate_device(name)
    else:
        user, password = name, folder.add_account(name, "device", replace)
    write_device(folder, site, device, password, out, user=user)
    return password


def add_service(
    folder: Folder,
    name: str,
    role: str,
    out: Path,
    *,
    replace: bool = False,
    owner: str | None = None,
) -> str:
    """A collector's or a tool's account, and its settings file (write_service), given to
    `owner` when named (the system user the service runs as); returns the password. A running
    broker takes it once reloaded."""
    owner_ids = _owner_ids(owner)
    password = folder.add_account(name, role, replace)
    write_service(folder, name, role, password, out, owner_ids=owner_ids)
    return password


def device_settings(
    folder: Folder, site: str, device: str, password: str, user: str | None = None
) -> dict[str, str]:
    """A terminal's settings for reaching the broker, ACCOUNT_KEYS in their order: its site
    and device, the broker's URL, the account (user: site/device unless named, password) and
    the CA."""
    user = user or f"{site}/{device}"
    account = (site, device, folder.url, user, password, folder.ca_cert.read_text())
    return dict(zip(ACCOUNT_KEYS, account, strict=True))


def write_device(
    folder: Folder, site: str, device: str, password: str, out: Path, *, user: str | None = None
) -> None:
    """The terminal's settings file: device_settings(), over any settings already in `out`
    (Wi-Fi, counter...), which are kept."""
    values: dict[str, object] = {}
    if out.exists():
        try:
            values = json.loads(out.read_text())
        except ValueError as e:
            raise BrokerSetupError(f"{out}: not a settings file: {e}") from None
    values.update(device_settings(folder, site, device, password, user))
    _secret(out, json.dumps(values, indent=2, ensure_ascii=False) + "\n")


def write_service(
    folder: Folder,
    name: str,
    role: str,
    password: str,
    out: Path,
    *,
    owner_ids: tuple[int, int] | None = None,
) -> None:
    """A settings file in the collector's TOML (its keys are the SVC_ variables' names), which
    svc-collector reads as it is and the other tools read for the broker's address. A
    collector's also names the broker's roster, so that it takes ratings only from terminals
    with an account."""
    host = folder.hostname
    lines = [
        f"# {name}'s account on {folder.url}, written by svc-broker; keep it secret",
        f"mqtt_url = {json.dumps(f'mqtts://{name}:{password}@{host}:{folder.port}')}",
        f"mqtt_ca_file = {json.dumps(str(folder.ca_cert))}",
        f"client_id = {json.dumps(name)}",
    ]
    if role in ("collector", "console"):
        lines.append(f"known_devices = {json.dumps(str(folder.roster))}")
    _secret(out, "\n".join(lines) + "\n", owner_ids)


def add_web(
    folder: Folder, hostnames: list[str], out_dir: Path, *, owner: str | None = None
) -> tuple[Path, Path]:
    """A web server's certificate (web.crt, 0644) and key (web.key, 0600, given to `owner`)
    in out_dir, from the hall's CA, for the names its browsers use; returns their paths."""
    if not hostnames:
        raise BrokerSetupError("name the web server's host at least once (--host)")
    owner_ids = _owner_ids(owner)
    issued = folder.issue_web(hostnames)
    cert, key = out_dir / "web.crt", out_dir / "web.key"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_file(cert, issued.cert_pem.decode(), 0o644, owner=owner_ids)
    _secret(key, issued.key_pem.decode(), owner_ids)
    return cert, key


def _owner_ids(owner: str | None) -> tuple[int, int] | None:
    """(uid, gid) of the user a settings file is for; checked before any account is made."""
    if owner is None:
        return None
    if os.geteuid() != 0:
        raise BrokerSetupError(f"--owner {owner}: only root can give a file to another user")
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise BrokerSetupError(f"--owner {owner}: no such user (useradd it first)") from None
    return entry.pw_uid, entry.pw_gid


def _secret(path: Path, text: str, owner_ids: tuple[int, int] | None = None) -> None:
    """Written 0600, and given to its owner before it takes its place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, text, 0o600, owner=owner_ids)
