"""The collector's settings: an optional TOML file, then environment variables over it.

The file's keys are the variables' names in lower case without SVC_ (README's table).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from firmware import contract


class SettingsError(ValueError):
    """A setting has a value the collector cannot use."""


@dataclass(frozen=True)
class MqttAddress:
    host: str
    port: int
    username: str | None
    password: str | None


@dataclass(frozen=True)
class Settings:
    mqtt: MqttAddress
    influx_url: str
    influx_db: str
    influx_token: str | None
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
    """mqtt://[user[:password]@]host[:port]"""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise SettingsError(f"SVC_MQTT_URL must look like mqtt://user:pass@host:port, not {url!r}")
    return MqttAddress(
        host=parts.hostname,
        port=parts.port or 1883,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


def from_env(env: Mapping[str, str] = os.environ) -> Settings:
    influx_url = env.get("SVC_INFLUX_URL", "http://127.0.0.1:8086").rstrip("/")
    if urlsplit(influx_url).scheme not in ("http", "https"):
        raise SettingsError(f"SVC_INFLUX_URL must be http(s)://host:port, not {influx_url!r}")
    return Settings(
        mqtt=parse_mqtt_url(env.get("SVC_MQTT_URL", "mqtt://127.0.0.1:1883")),
        influx_url=influx_url,
        influx_db=env.get("SVC_INFLUX_DB", "service_quality"),
        influx_token=env.get("SVC_INFLUX_TOKEN") or None,
        topic_root=env.get("SVC_TOPIC_ROOT", contract.ROOT).strip("/"),
        state_dir=Path(env.get("SVC_STATE_DIR", "collector-state")),
        client_id=env.get("SVC_CLIENT_ID", "svc-collector"),
        batch_max=_int(env, "SVC_BATCH_MAX", 5000),
        batch_linger_s=_int(env, "SVC_BATCH_LINGER_MS", 0) / 1000,
        log_level=env.get("SVC_LOG_LEVEL", "info").lower(),
        http=_address(env.get("SVC_HTTP", "127.0.0.1:9108")),
        trend_window_s=_int(env, "SVC_TREND_WINDOW_S", 900),
        trend_min=_int(env, "SVC_TREND_MIN", 4),
        trend_share=_share(env.get("SVC_TREND_SHARE", "0.5")),
        offline_alert_s=_int(env, "SVC_OFFLINE_ALERT_S", 300),
        queue_alert=_int(env, "SVC_QUEUE_ALERT", 50),
        share_group=_share_group(env.get("SVC_SHARE_GROUP", "")),
        spool_bytes=_int(env, "SVC_SPOOL_BYTES", 256 * 1024 * 1024),
    )


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


FILE_KEYS = (
    "mqtt_url",
    "influx_url",
    "influx_db",
    "influx_token",
    "topic_root",
    "state_dir",
    "client_id",
    "batch_max",
    "batch_linger_ms",
    "log_level",
    "http",
    "trend_window_s",
    "trend_min",
    "trend_share",
    "offline_alert_s",
    "queue_alert",
    "share_group",
    "spool_bytes",
)


def from_toml(path: Path) -> dict[str, str]:
    """A settings file as the environment variables it stands for."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: {e}") from None
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise SettingsError(f"{path}: unknown settings {unknown}; known: {list(FILE_KEYS)}")
    for key, value in data.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise SettingsError(f"{path}: {key} must be a string or a number")
    return {f"SVC_{key.upper()}": str(value) for key, value in data.items()}


def load(env: Mapping[str, str] = os.environ, config_file: Path | None = None) -> Settings:
    """The file (config_file, or SVC_CONFIG), then the environment over it."""
    path = config_file or (Path(env["SVC_CONFIG"]) if env.get("SVC_CONFIG") else None)
    merged = from_toml(path) if path else {}
    merged.update({key: value for key, value in env.items() if key.startswith("SVC_")})
    return from_env(merged)
