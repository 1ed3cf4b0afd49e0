"""The collector's settings: an optional TOML file, then environment variables over it.

The file's keys are the variables' names in lower case without SVC_ (docs/collector.md's table).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from firmware import contract


class SettingsError(ValueError):
    """A setting has a value the collector cannot use."""


@dataclass(frozen=True)
class MqttAddress:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)  # never in a log line, even by accident
    tls: bool = False

    def client(self, client_id: str, ca_file: Path | None) -> mqtt.Client:
        """An MQTT 5 client of this account that acknowledges each message itself (after its
        handler), as the collector and the console connect."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        self.log_in(client, ca_file)
        return client

    def log_in(self, client: mqtt.Client, ca_file: Path | None) -> None:
        """Give a client this account, and TLS with the broker's certificate checked against
        the CA (the system's without one) and its name."""
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=str(ca_file) if ca_file else None)


@dataclass(frozen=True)
class Settings:
    mqtt: MqttAddress
    mqtt_ca_file: Path | None
    known_devices: Path | None
    influx_url: str
    influx_db: str
    influx_token: str | None = field(repr=False)
    topic_root: str
    state_dir: Path
    client_id: str
    batch_max: int
    batch_linger_s: float
    log_level: str
    http: str
    trend_window_s: int
    trend_min: int
    trend_share: float
    offline_alert_s: int
    queue_alert: int
    share_group: str
    spool_bytes: int


def parse_mqtt_url(url: str) -> MqttAddress:
    """mqtt[s]://[user[:password]@]host[:port]; mqtts is MQTT over TLS, the server checked."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        port = -1
    if parts.scheme not in contract.BROKER_PORTS or not parts.hostname or port == -1:
        shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
        raise SettingsError(
            f"SVC_MQTT_URL must look like mqtts://user:pass@host:port, not {shown!r}"
        )
    return MqttAddress(
        host=parts.hostname,
        port=port or contract.BROKER_PORTS[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme == "mqtts",
    )


# Every setting with its default, as the text a variable would hold (None: unset): the one
# list of them, which docs/collector.md's table and collector/sample.toml follow (a test
# holds them to it).
DEFAULTS: dict[str, str | None] = {
    "mqtt_url": "mqtt://127.0.0.1:1883",
    "mqtt_ca_file": None,
    "known_devices": None,
    "influx_url": "http://127.0.0.1:8086",
    "influx_db": "service_quality",
    "influx_token": None,
    "topic_root": contract.ROOT,
    "state_dir": "collector-state",
    "client_id": "svc-collector",
    "batch_max": "5000",
    "batch_linger_ms": "0",
    "log_level": "info",
    "http": "127.0.0.1:9108",
    "trend_window_s": "900",
    "trend_min": "4",
    "trend_share": "0.5",
    "offline_alert_s": "300",
    "queue_alert": "50",
    "share_group": None,
    "spool_bytes": str(256 * 1024 * 1024),
}
FILE_KEYS = tuple(DEFAULTS)


def variable(key: str) -> str:
    """The environment variable of a setting: SVC_ and its key in upper case."""
    return "SVC_" + key.upper()


def from_env(env: Mapping[str, str] = os.environ) -> Settings:
    def text(key: str) -> str:
        return env.get(variable(key)) or DEFAULTS[key] or ""

    def whole(key: str) -> int:
        raw = text(key)
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{variable(key)} must be a whole number, not {raw!r}") from None

    influx_url = text("influx_url").rstrip("/")
    if urlsplit(influx_url).scheme not in ("http", "https"):
        raise SettingsError(f"SVC_INFLUX_URL must be http(s)://host:port, not {influx_url!r}")
    return Settings(
        mqtt=parse_mqtt_url(text("mqtt_url")),
        mqtt_ca_file=_path(text("mqtt_ca_file")),
        known_devices=_path(text("known_devices")),
        influx_url=influx_url,
        influx_db=text("influx_db"),
        influx_token=text("influx_token") or None,
        topic_root=text("topic_root").strip("/"),
        state_dir=Path(text("state_dir")),
        client_id=text("client_id"),
        batch_max=whole("batch_max"),
        batch_linger_s=whole("batch_linger_ms") / 1000,
        log_level=text("log_level").lower(),
        http=_address(env.get(variable("http"), text("http"))),  # set empty: none
        trend_window_s=whole("trend_window_s"),
        trend_min=whole("trend_min"),
        trend_share=_share(text("trend_share")),
        offline_alert_s=whole("offline_alert_s"),
        queue_alert=whole("queue_alert"),
        share_group=_share_group(text("share_group")),
        spool_bytes=whole("spool_bytes"),
    )


def _path(raw: str) -> Path | None:
    return Path(raw) if raw else None


def _share_group(raw: str) -> str:
    if any(c in raw for c in "/+#"):
        raise SettingsError(f"SVC_SHARE_GROUP must not hold / + or #, not {raw!r}")
    return raw


def _share(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise SettingsError(f"SVC_TREND_SHARE must be a fraction in (0, 1], not {raw!r}")
    return value


def _address(raw: str) -> str:
    """host:port for /metrics and /healthz, or "" for none."""
    if raw and not raw.rpartition(":")[2].isdigit():
        raise SettingsError(f"SVC_HTTP must be host:port or empty, not {raw!r}")
    return raw


def from_toml(
    path: Path, keys: tuple[str, ...] = FILE_KEYS, named: Callable[[str], str] = variable
) -> dict[str, str]:
    """A settings file as the environment variables it stands for (`named`: a key's
    variable), its keys among `keys`."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SettingsError(f"{path}: {e}") from None
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise SettingsError(f"{path}: unknown settings {unknown}; known: {list(keys)}")
    for key, value in data.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise SettingsError(f"{path}: {key} must be a string or a number")
    return {named(key): str(value) for key, value in data.items()}


def load(env: Mapping[str, str] = os.environ, config_file: Path | None = None) -> Settings:
    """The file (config_file, or SVC_CONFIG), then the environment over it."""
    path = config_file or (Path(env["SVC_CONFIG"]) if env.get("SVC_CONFIG") else None)
    merged = from_toml(path) if path else {}
    merged.update({key: value for key, value in env.items() if key.startswith("SVC_")})
    return from_env(merged)
