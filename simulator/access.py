"""How a simulated hall reaches its broker: in the clear and anonymously (a test broker, or
one named on the command line), or as a hall's broker set up by svc-broker, where every
terminal logs in with an account of its own over TLS and the front desk with a tools one."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from broker import credentials
from broker.folder import Folder
from fwtools.unix_port import firmware_module

settings_fw = firmware_module("settings")
DESK_ACCOUNT = "svc-sim-desk"


@dataclass(frozen=True)
class Access:
    url: str  # mqtt://host:port, or the hall broker's mqtts://
    folder: Folder | None = None  # the hall broker's set-up, if it is one
    passwords: dict[str, str] = field(default_factory=dict, repr=False)  # account -> password

    @property
    def address(self) -> tuple[str, int]:
        host, port, _user, _password = settings_fw.parse_broker_url(self.url)
        return host, port

    def device_settings(self, site: str, device: str) -> dict[str, Any]:
        """The terminal's settings for the broker, as its settings file holds them."""
        if self.folder is None:
            return {"site": site, "device": device, "broker": self.url}
        password = self.passwords[f"{site}/{device}"]
        return credentials.device_settings(self.folder, site, device, password)

    def log_in(self, client: mqtt.Client) -> None:
        """A tool's paho client: over TLS, the broker checked, with the desk's account."""
        if self.folder is not None:
            client.tls_set_context(ssl.create_default_context(cafile=str(self.folder.ca_cert)))
            client.username_pw_set(DESK_ACCOUNT, self.passwords[DESK_ACCOUNT])


def plain(url: str) -> Access:
    return Access(url)


def hall(folder: Folder, devices: Iterable[tuple[str, str]]) -> Access:
    """Accounts on the hall's broker for these terminals and the desk (new passwords for any
    that had one); a running broker must then be reloaded."""
    names = [f"{site}/{device}" for site, device in devices]
    passwords = folder.add_accounts(names, "device", replace=True)
    passwords.update(folder.add_accounts([DESK_ACCOUNT], "tools", replace=True))
    return Access(folder.url, folder, passwords)
