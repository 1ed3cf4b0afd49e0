"""The console's settings: an optional TOML file (SVC_CONSOLE_CONFIG), then environment
variables over it, as the collector's (collector/settings.py): the file's keys are the
variables' names in lower case without SVC_CONSOLE_ (docs/console.md's table, which a test
holds to DEFAULTS).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.settings import MqttAddress, SettingsError, from_toml, parse_mqtt_url
from firmware import contract

PREFIX = "SVC_CONSOLE_"

# Every setting with its default as the text a variable would hold (None: unset).
DEFAULTS: dict[str, str | None] = {
    "db": "console.db",
    "listen": "127.0.0.1:8080",
    "tls_cert": None,
    "tls_key": None,
    "public_url": None,
    "mqtt_url": "mqtt://127.0.0.1:1883",
    "mqtt_ca_file": None,
    "client_id": "svc-console",
    "topic_root": contract.ROOT,
    "known_devices": None,
    "influx_url": "http://127.0.0.1:8086",
    "influx_db": "service_quality",
    "influx_token": None,
    "grafana_url": None,
    "tz": "Asia/Shanghai",
    "min_ratings": "30",
    "callback_days": "1",
    "fix_days": "5",
    "reconcile_s": "60",
    "session_hours": "12",
    "webhook_relays": None,
    "smtp_url": None,
    "smtp_from": "svc-console@localhost",
    "smtp_ca_file": None,
    "log_level": "info",
}
FILE_KEYS = tuple(DEFAULTS)


@dataclass(frozen=True)
class SmtpAddress:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)  # never in a log line, even by accident
    starttls: bool = True  # smtp:// with STARTTLS, required; smtp+plain:// only on loopback


@dataclass(frozen=True)
class Settings:
    db: Path
    host: str
    port: int
    tls_cert: Path | None
    tls_key: Path | None
    public_url: str
    mqtt: MqttAddress
    mqtt_ca_file: Path | None
    client_id: str
    topic_root: str
    known_devices: Path | None
    influx_url: str
    influx_db: str
    influx_token: str | None = field(repr=False)
    grafana_url: str | None
    tz: str
    min_ratings: int
    callback_days: int
    fix_days: int
    reconcile_s: float
    session_s: float
    webhook_relays: tuple[str, ...]
    smtp: SmtpAddress | None
    smtp_from: str
    smtp_ca_file: Path | None
    log_level: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


def variable(key: str) -> str:
    return PREFIX + key.upper()


def from_env(env: Mapping[str, str] = os.environ) -> Settings:
    def text(key: str) -> str:
        return env.get(variable(key)) or DEFAULTS[key] or ""

    def whole(key: str, low: int, high: int) -> int:
        raw = text(key)
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise SettingsError(f"{variable(key)} must be a whole number {low}–{high}, not {raw!r}")
        return value

    host, port = _listen(text("listen"))
    cert, key = _path(text("tls_cert")), _path(text("tls_key"))
    if (cert is None) != (key is None):
        raise SettingsError(f"{variable('tls_cert')} and {variable('tls_key')} go together")
    if cert is None and not _loopback(host):
        raise SettingsError(
            f"{variable('listen')} {host} is not loopback: plain HTTP is for loopback only; "
            f"set {variable('tls_cert')} and {variable('tls_key')} (svc-broker add-web issues them)"
        )
    scheme = "https" if cert else "http"
    public_url = (text("public_url") or f"{scheme}://{_bracketed(host)}:{port}").rstrip("/")
    _url(public_url, "public_url")
    influx_url = text("influx_url").rstrip("/")
    _url(influx_url, "influx_url")
    grafana_url = text("grafana_url").rstrip("/") or None
    if grafana_url:
        _url(grafana_url, "grafana_url")
    tz = text("tz")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{variable('tz')} must be a time zone name, not {tz!r}") from None
    level = text("log_level").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"{variable('log_level')} must be debug, info, warning or error")
    return Settings(
        db=Path(text("db")),
        host=host,
        port=port,
        tls_cert=cert,
        tls_key=key,
        public_url=public_url,
        mqtt=parse_mqtt_url(text("mqtt_url")),
        mqtt_ca_file=_path(text("mqtt_ca_file")),
        client_id=text("client_id"),
        topic_root=text("topic_root").strip("/"),
        known_devices=_path(text("known_devices")),
        influx_url=influx_url,
        influx_db=text("influx_db"),
        influx_token=text("influx_token") or None,
        grafana_url=grafana_url,
        tz=tz,
        min_ratings=whole("min_ratings", 1, 10_000),
        callback_days=whole("callback_days", 1, 60),
        fix_days=whole("fix_days", 1, 60),
        reconcile_s=whole("reconcile_s", 1, 3600),
        session_s=whole("session_hours", 1, 24 * 30) * 3600,
        webhook_relays=tuple(h.strip() for h in text("webhook_relays").split(",") if h.strip()),
        smtp=_smtp(text("smtp_url")),
        smtp_from=text("smtp_from"),
        smtp_ca_file=_path(text("smtp_ca_file")),
        log_level=level,
    )


def _path(raw: str) -> Path | None:
    return Path(raw) if raw else None


def _listen(raw: str) -> tuple[str, int]:
    host, _, port = raw.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{variable('listen')} must be host:port, not {raw!r}")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _url(url: str, key: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{variable(key)} must be http(s)://host[:port][/path], not {url!r}")


def _smtp(url: str) -> SmtpAddress | None:
    """smtp://[user:pass@]host[:587] with STARTTLS (required), or smtp+plain://host:port for a
    relay on loopback only; none: no e-mail."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        port = -1
    if parts.scheme not in ("smtp", "smtp+plain") or not parts.hostname or port == -1:
        shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
        raise SettingsError(
            f"{variable('smtp_url')} must be smtp://user:pass@host:587, not {shown!r}"
        )
    if parts.scheme == "smtp+plain" and not _loopback(parts.hostname):
        raise SettingsError(
            f"{variable('smtp_url')}: smtp+plain:// (no STARTTLS) is for loopback only"
        )
    return SmtpAddress(
        host=parts.hostname,
        port=port or 587,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=parts.scheme == "smtp",
    )


def load(env: Mapping[str, str] = os.environ, config_file: Path | None = None) -> Settings:
    """The file (config_file, or SVC_CONSOLE_CONFIG), then the environment over it."""
    named = env.get(PREFIX + "CONFIG")
    path = config_file or (Path(named) if named else None)
    merged = from_toml(path, FILE_KEYS, variable) if path else {}
    merged.update({key: value for key, value in env.items() if key.startswith(PREFIX)})
    return from_env(merged)
