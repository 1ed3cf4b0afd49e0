"""How a simulated hall reaches its broker: in the clear and anonymously (a test broker, or
one named on the command line), or as a hall's broker set up by svc-broker, where every
terminal logs in with an account of its own over TLS and the front desk with a tools one:
accounts made for the run in the broker's folder (and removed after it), or settings files
made beforehand with svc-broker (`--accounts`)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from broker import credentials
from broker.folder import BrokerSetupError, Folder, load
from collector.settings import SettingsError, from_toml, parse_mqtt_url
from fwtools.unix_port import firmware_module

settings_fw = firmware_module("settings")
DESK_ACCOUNT = "svc-sim-desk"
DESK_FILE = "desk.toml"  # in an --accounts folder: the front desk's tools account


@dataclass(frozen=True)
class Desk:
    """The front desk's account: a tools one, over TLS with the hall's CA."""

    user: str
    password: str = field(repr=False)
    ca_file: Path


@dataclass(frozen=True)
class Access:
    url: str  # mqtt://host:port, or the hall broker's mqtts://
    devices: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    desk: Desk | None = None
    made: tuple[str, ...] = ()  # accounts made for this run, removed after it (release())
    folder: Folder | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port, _user, _password = settings_fw.parse_broker_url(self.url)
        return host, port

    def device_settings(self, site: str, device: str) -> dict[str, Any]:
        """The terminal's settings for the broker, as its settings file holds them."""
        return self.devices.get(
            (site, device), {"site": site, "device": device, "broker": self.url}
        )

    def log_in(self, client: mqtt.Client) -> None:
        """A tool's paho client: over TLS, the broker checked, with the desk's account."""
        if self.desk is not None:
            client.tls_set_context(ssl.create_default_context(cafile=str(self.desk.ca_file)))
            client.username_pw_set(self.desk.user, self.desk.password)

    def release(self) -> list[str]:
        """Remove the accounts made for the run (the broker reloaded); those removed."""
        if self.folder is None or not self.made:
            return []
        folder = load(self.folder.path)  # as it is now: svc-broker may have run meanwhile
        for name in self.made:
            if name in folder.accounts:
                folder.remove_account(name)
        folder.reload()
        return list(self.made)


def plain(url: str) -> Access:
    return Access(url)


def hall(
    folder: Folder, devices: Iterable[tuple[str, str]], url: str | None = None, fresh: bool = False
) -> Access:
    """Accounts on the hall's broker for these terminals and the desk; a running broker must
    then be reloaded. fresh: new accounts only, refused for a name that has one (a real
    terminal's), and removed after the run (release()); else new passwords for any that had
    one (the simulator's own broker)."""
    names = [f"{site}/{device}" for site, device in devices]
    if fresh:
        taken = sorted(set(folder.accounts) & {*names, DESK_ACCOUNT})
        if taken:
            raise BrokerSetupError(
                f"{', '.join(taken[:5])} {'has' if len(taken) == 1 else 'have'} an account on "
                f"this broker already: a simulated terminal never takes a real one's (name the "
                f"scenario's halls otherwise, or `svc-broker remove` what an earlier run left)"
            )
    passwords = folder.add_accounts(names, "device", replace=not fresh)
    try:
        passwords.update(folder.add_accounts([DESK_ACCOUNT], "tools", replace=not fresh))
    except BrokerSetupError:
        for name in names:
            folder.remove_account(name)
        raise
    by_device = {}
    for site, device in devices_of(names):
        password = passwords[f"{site}/{device}"]
        by_device[(site, device)] = _own_url(
            credentials.device_settings(folder, site, device, password), url
        )
    desk = Desk(DESK_ACCOUNT, passwords[DESK_ACCOUNT], folder.ca_cert)
    made = (*names, DESK_ACCOUNT) if fresh else ()
    return Access(url or folder.url, by_device, desk, made, folder)


def from_files(folder: Path, devices: Iterable[tuple[str, str]], url: str | None = None) -> Access:
    """The terminals' settings files (`{site}-{device}.json`, as `svc-broker add-device --out`
    writes them) and the desk's tools account (desk.toml, `svc-broker add-service --role
    tools --out`) made beforehand, in one folder."""
    by_device = {}
    for site, device in devices:
        path = folder / f"{site}-{device}.json"
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SettingsError(f"{path}: no terminal settings file ({e})") from None
        account = {key: values.get(key) for key in settings_fw.ACCOUNT_KEYS}
        if account["site"] != site or account["device"] != device or not account["broker_user"]:
            raise SettingsError(f"{path}: not {site}/{device}'s account (svc-broker add-device)")
        by_device[(site, device)] = _own_url(account, url)
    desk_file = folder / DESK_FILE
    values = from_toml(desk_file, ("mqtt_url", "mqtt_ca_file", "client_id"), lambda key: key)
    address = parse_mqtt_url(values.get("mqtt_url", ""))
    if not address.username or not address.password or "mqtt_ca_file" not in values:
        raise SettingsError(f"{desk_file}: a tools account's settings (svc-broker add-service)")
    desk = Desk(address.username, address.password, Path(values["mqtt_ca_file"]))
    first = next(iter(by_device.values()), None)
    return Access(url or (first["broker"] if first else ""), by_device, desk)


def devices_of(names: Iterable[str]) -> list[tuple[str, str]]:
    return [(name.split("/")[0], name.split("/")[1]) for name in names]


def _own_url(account: dict[str, Any], url: str | None) -> dict[str, Any]:
    """The account with the broker's URL as the run names it (a name its certificate holds)."""
    return {**account, "broker": url} if url else account
