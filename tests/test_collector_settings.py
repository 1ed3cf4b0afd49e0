"""The collector's environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import settings


def test_defaults():
    s = settings.from_env({})
    assert s.mqtt == settings.MqttAddress("127.0.0.1", 1883, None, None)
    assert s.influx_url == "http://127.0.0.1:8086"
    assert s.influx_db == "service_quality"
    assert s.influx_token is None
    assert s.topic_root == "svc/v1"
    assert s.state_dir == Path("collector-state")


def test_everything_set():
    s = settings.from_env(
        {
            "SVC_MQTT_URL": "mqtt://user:p%40ss@broker.local:8883",
            "SVC_INFLUX_URL": "http://db:8086/",
            "SVC_INFLUX_DB": "sq",
            "SVC_INFLUX_TOKEN": "tok",
            "SVC_TOPIC_ROOT": "/svc/v1/",
            "SVC_STATE_DIR": "/var/lib/svc",
            "SVC_BATCH_MAX": "100",
            "SVC_BATCH_LINGER_MS": "50",
        }
    )
    assert s.mqtt == settings.MqttAddress("broker.local", 8883, "user", "p@ss")
    assert s.influx_url == "http://db:8086"
    assert (s.influx_db, s.influx_token, s.topic_root) == ("sq", "tok", "svc/v1")
    assert s.state_dir == Path("/var/lib/svc")
    assert (s.batch_max, s.batch_linger_s) == (100, 0.05)


@pytest.mark.parametrize(
    "env",
    [
        {"SVC_MQTT_URL": "tcp://broker:1883"},
        {"SVC_MQTT_URL": "mqtt://"},
        {"SVC_INFLUX_URL": "db:8086"},
        {"SVC_BATCH_MAX": "many"},
    ],
)
def test_bad_values_are_named(env):
    with pytest.raises(settings.SettingsError) as bad:
        settings.from_env(env)
    assert next(iter(env)) in str(bad.value)
