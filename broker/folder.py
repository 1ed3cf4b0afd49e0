"""One hall broker's folder: Mosquitto's configuration, accounts, ACL and certificates.

    mosquitto.conf   the broker's whole configuration (mosquitto -c DIR/mosquitto.conf)
    svc-broker.json  what svc-broker keeps: the listener, the host name, the accounts and roles
    passwd, acl      Mosquitto's password file (hashes only) and ACL, both written from it
    devices.txt      the roster of known devices, one site/device a line, for the collector
    ca.crt, ca.key   the development CA (ca.key never leaves this folder and is root's alone)
    server.crt/.key  the broker's certificate, signed by the CA
    data/            Mosquitto's persistence

Run as root, Mosquitto drops to its `user` (mosquitto by default) after opening its listener,
and reads the password file and ACL as that user, on start and on every reload (SIGHUP): the
files it reads belong to that user's group. The folder lets everyone in, for what is public in
it (ca.crt, server.crt, devices.txt: the collector reads the CA and the roster under an account
of its own); each secret is closed to others by its own mode.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from broker import acl, pki
from firmware import contract

STATE = "svc-broker.json"
PASSWORD_BYTES = 18  # 24 characters of URL-safe base64
DEFAULT_PORT = 8883
FOLDER_MODE = 0o755  # ca.crt, server.crt and devices.txt are 0644; the rest 0640 or 0600


SECOND = "device2"  # the role of a terminal's second account
SECOND_SUFFIX = "/2"
DEVICE_ROLES = ("device", SECOND)


def second_account(name: str) -> str:
    """A terminal's second account (site/device/2), which a password rotation alternates to."""
    return name + SECOND_SUFFIX


class BrokerSetupError(RuntimeError):
    """The folder, an account name or an option is not one svc-broker can use."""


@dataclass
class Folder:
    path: Path
    listen: str  # host:port of the one TLS listener
    hostname: str  # the name devices connect to, in the server certificate
    root: str = contract.ROOT
    user: str = "mosquitto"  # whom Mosquitto runs as once started as root
    accounts: dict[str, str] = field(default_factory=dict)  # name -> role
    # a terminal's account as its newest settings file names it, where not site/device: its
    # second account, site/device/2 (a password rotation alternates between the two)
    using: dict[str, str] = field(default_factory=dict)
    rotating: dict[str, str] = field(default_factory=dict)  # rotations not yet retired

    # --- where things are ---

    @property
    def conf(self) -> Path:
        return self.path / "mosquitto.conf"

    @property
    def ca_cert(self) -> Path:
        return self.path / "ca.crt"

    @property
    def roster(self) -> Path:
        return self.path / "devices.txt"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def url(self) -> str:
        """The broker as its clients name it."""
        return f"mqtts://{self.hostname}:{self.port}"

    # --- the files ---

    def save(self) -> None:
        """svc-broker.json, and every file written from it. The folder is open to every
        user (FOLDER_MODE), so a service under an account of its own reads what is public in
        it, the CA and the roster; what is secret is closed file by file."""
        _own(self.path, FOLDER_MODE, self._group())
        state = {
            "listen": self.listen,
            "hostname": self.hostname,
            "root": self.root,
            "user": self.user,
            "accounts": self.accounts,
            "using": self.using,
            "rotating": self.rotating,
        }
        write_file(self.path / STATE, json.dumps(state, indent=2) + "\n", 0o600)
        write_file(self.conf, self._mosquitto_conf(), 0o640, self._group())
        services = {n: r for n, r in self.accounts.items() if r not in DEVICE_ROLES}
        seconds = sorted(n for n, r in self.accounts.items() if r == SECOND)
        text = acl.render(self.root, services, seconds)
        write_file(self.path / "acl", text, 0o640, self._group())
        devices = sorted(n for n, r in self.accounts.items() if r == "device")
        roster = "# known devices, written by svc-broker: site/device\n" + "".join(
            f"{name}\n" for name in devices
        )
        write_file(self.roster, roster, 0o644)

    def issue_web(self, hostnames: list[str]) -> pki.Issued:
        """A certificate and key for a web server of the hall (the console's HTTPS), naming
        hostnames, signed by the hall's CA: a browser that trusts the CA trusts it."""
        ca = pki.Issued((self.path / "ca.crt").read_bytes(), (self.path / "ca.key").read_bytes())
        return pki.make_server(ca, hostnames)

    def renew_server(self) -> datetime.datetime:
        """A new certificate and key for the broker, for the names the old one gave, signed
        by the hall's CA: its clients, which trust the CA, take it without a change. Returns
        when it expires."""
        ca = pki.Issued((self.path / "ca.crt").read_bytes(), (self.path / "ca.key").read_bytes())
        names = pki.names_of((self.path / "server.crt").read_bytes())
        server = pki.make_server(ca, names)
        write_file(self.path / "server.key", server.key_pem.decode(), 0o640, self._group())
        write_file(self.path / "server.crt", server.cert_pem.decode(), 0o644)
        return pki.expires(server.cert_pem)

    def _mosquitto_conf(self) -> str:
        host, _, port = self.listen.rpartition(":")
        d = self.path
        lines = [
            "# Written by svc-broker; svc-broker rewrites it. docs/install.md says why each line.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {d}/passwd",
            f"acl_file {d}/acl",
            "persistence true",
            f"persistence_location {d}/data/",
            "autosave_interval 60",
            "max_queued_messages 100000",  # a collector's session while it is away
            "max_inflight_messages 10000",  # two of the collector's batches (docs/collector.md)
            # a session unused this long goes (a terminal's, left behind when a password
            # rotation moved it to its other account): a client away longer starts afresh, and
            # loses nothing, as terminals resend what no collector acknowledged
            "persistent_client_expiration 14d",
            "set_tcp_nodelay true",
            f"max_packet_size {contract.MAX_PACKET_BYTES}",  # no message a terminal cannot hold
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if _running_as_root() and self.user != "mosquitto":
            lines.append(f"user {self.user}")
        # Every listener option after its listener line: Mosquitto 2.0.11 otherwise opens a
        # second, default listener on 0.0.0.0:1883 for it, without a word.
        lines += [
            f"listener {port} {host}",
            f"certfile {d}/server.crt",
            f"keyfile {d}/server.key",
            "use_username_as_clientid true",  # no client can take another's id (and session)
        ]
        return "\n".join(lines) + "\n"

    def _group(self) -> int | None:
        """The group Mosquitto's user reads its files as; None when not run as root."""
        ids = self._ids()
        return None if ids is None else ids[1]

    def _ids(self) -> tuple[int, int] | None:
        """(uid, gid) Mosquitto runs as; None when not run as root (nothing to hand over)."""
        if not _running_as_root():
            return None
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            raise BrokerSetupError(f"no user {self.user!r} for Mosquitto to run as") from None
        return entry.pw_uid, entry.pw_gid

    # --- accounts ---

    def add_account(self, name: str, role: str, replace: bool = False) -> str:
        """A new account with a new password, returned (and kept nowhere but its hash)."""
        return self.add_accounts([name], role, replace)[name]

    def add_accounts(self, names: list[str], role: str, replace: bool = False) -> dict[str, str]:
        """New accounts of one role, with their new passwords; the files written once."""
        for name in names:
            _check_name(name, role)
            if name in self.accounts and not replace:
                raise BrokerSetupError(f"{name!r} has an account already (--replace for a new one)")
        passwords = {name: secrets.token_urlsafe(PASSWORD_BYTES) for name in names}
        self._rewrite_passwd(drop=set(passwords), add=self._hashed(passwords))
        self.accounts.update(dict.fromkeys(names, role))
        self.save()
        return passwords

    def remove_account(self, name: str) -> None:
        """The account gone: from the password file, the ACL and the roster (a terminal's
        second account with it)."""
        if name not in self.accounts:
            raise BrokerSetupError(f"no account {name!r}")
        gone = {name, second_account(name)} & set(self.accounts)
        self._rewrite_passwd(drop=gone, add=[])
        for each in gone:
            del self.accounts[each]
        self.using.pop(name, None)
        self.rotating.pop(name, None)
        self.save()

    def rotate_device(self, name: str) -> tuple[str, str]:
        """A new password for a terminal, on the account its newest settings file does not
        name (site/device or its second, site/device/2), the one it uses kept as it is: a
        terminal offline during the rotation still logs in, takes the new settings over the
        air, then logs in with them. Until `retire` says the terminal has them, a rotation
        again changes the same new account, never the one the terminal may still use.
        Returns (account, password)."""
        if self.accounts.get(name) != "device":
            raise BrokerSetupError(f"no terminal account {name!r} (add-device without --replace)")
        new = self.rotating.get(name)
        if new is None:
            new = second_account(name) if self.using.get(name, name) == name else name
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        self._rewrite_passwd(drop={new}, add=self._hashed({new: password}))
        self.accounts[new] = "device" if new == name else SECOND
        self.using[name] = new
        self.rotating[name] = new
        self.save()
        return new, password

    def retire(self, name: str) -> str:
        """The terminal has taken its newest settings (svc-firmware offer-settings said ok):
        the password of the account it used before is revoked. Returns that account."""
        new = self.rotating.pop(name, None)
        if new is None:
            raise BrokerSetupError(f"no rotation of {name!r} to retire (add-device --replace)")
        old = second_account(name) if new == name else name
        self._rewrite_passwd(drop={old}, add=[])
        if old != name:
            self.accounts.pop(old, None)  # its ACL lines go too; site/device stays on the roster
        self.save()
        return old

    def _rewrite_passwd(self, drop: set[str], add: list[str]) -> None:
        passwd = self.path / "passwd"
        kept = [
            line
            for line in passwd.read_text().splitlines()
            if line and line.split(":", 1)[0] not in drop
        ]
        write_file(passwd, "".join(f"{line}\n" for line in [*kept, *add]), 0o640, self._group())

    def _hashed(self, passwords: dict[str, str]) -> list[str]:
        """The password file's lines for these accounts, hashed by mosquitto_passwd (given the
        passwords in a file of root's, never on a command line other users can read)."""
        tool = shutil.which("mosquitto_passwd")
        if tool is None:
            raise BrokerSetupError("mosquitto_passwd not found: apt-get install mosquitto")
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".passwd-")
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{name}:{password}\n" for name, password in passwords.items())
            subprocess.run([tool, "-U", tmp], check=True, capture_output=True)
            return Path(tmp).read_text().splitlines()
        finally:
            os.unlink(tmp)

    def reload(self) -> int:
        """SIGHUP every Mosquitto running on this folder's conf: it reads the password file
        and ACL again, keeping its clients. Returns how many were told."""
        pids = self.broker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGHUP)
        return len(pids)

    def broker_pids(self) -> list[int]:
        """The Mosquitto processes running on this folder's conf (systemd's, or anyone's)."""
        conf = str(self.conf.resolve()).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # gone, or not ours to read
            if args[0].endswith(b"mosquitto") and conf in args:
                pids.append(int(proc.name))
        return pids


def init(
    path: Path,
    listen: str = f"0.0.0.0:{DEFAULT_PORT}",
    hostname: str | None = None,
    root: str = contract.ROOT,
    user: str = "mosquitto",
) -> Folder:
    """A new folder: CA, server certificate, configuration, no accounts yet."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise BrokerSetupError(f"--listen must be HOST:PORT, not {listen!r}")
    if (path / STATE).exists():
        raise BrokerSetupError(f"{path} holds a broker set-up already")
    name = hostname or (host if host not in ("0.0.0.0", "::") else os.uname().nodename)
    folder = Folder(path.resolve(), listen, name, root, user)
    path.mkdir(parents=True, exist_ok=True)
    group = folder._group()
    _own(path, FOLDER_MODE, group)
    data = path / "data"  # Mosquitto's own: it writes there
    data.mkdir(exist_ok=True)
    os.chmod(data, 0o750)
    ids = folder._ids()
    if ids is not None:
        os.chown(data, *ids)
    ca = pki.make_ca(f"svc-rating broker CA ({name})")
    server = pki.make_server(ca, [name, *({host} - {name, "0.0.0.0", "::"})])
    write_file(path / "ca.crt", ca.cert_pem.decode(), 0o644)
    write_file(path / "ca.key", ca.key_pem.decode(), 0o600)
    write_file(path / "server.crt", server.cert_pem.decode(), 0o644)
    write_file(path / "server.key", server.key_pem.decode(), 0o640, group)
    write_file(path / "passwd", "", 0o640, group)
    folder.save()
    return folder


def load(path: Path) -> Folder:
    try:
        state = json.loads((path / STATE).read_text())
    except (OSError, ValueError) as e:
        raise BrokerSetupError(f"{path} is not a broker set-up (svc-broker init): {e}") from None
    return Folder(path.resolve(), **state)


def _check_name(name: str, role: str) -> None:
    if role == SECOND:
        base, slash, suffix = name.rpartition("/")
        if not slash or "/" + suffix != SECOND_SUFFIX:
            raise BrokerSetupError(f"a terminal's second account is site/device{SECOND_SUFFIX}")
        _check_name(base, "device")
    elif role == "device":
        site, _, device = name.partition("/")
        if not (contract.valid_name("site", site) and contract.valid_name("device", device)):
            raise BrokerSetupError(f"a device is site/device, each {contract.name_pattern('site')}")
    elif role in acl.ROLES:
        if not contract.valid_name("device", name):  # the same rule: no / + # or spaces
            raise BrokerSetupError(f"a service's name must match {contract.name_pattern('device')}")
    else:
        raise BrokerSetupError(f"role must be one of {acl.ROLES}, not {role!r}")


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _own(path: Path, mode: int, group: int | None) -> None:
    """Mode, and when run as root root's, in the group Mosquitto runs as."""
    os.chmod(path, mode)
    if group is not None:
        os.chown(path, 0, group)


def write_file(
    path: Path,
    text: str,
    mode: int,
    group: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Written whole or not at all (a reloading broker never reads half a file), with this
    mode from the start (a secret is never readable by others, even for a moment); in
    Mosquitto's `group`, or given to `owner` (uid, gid)."""
    # a name of its own, made by this call (O_EXCL), and changed by its descriptor: a link
    # planted in the folder under a name it could guess is never followed
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), mode)
            if group is not None:
                os.fchown(f.fileno(), 0, group)
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
