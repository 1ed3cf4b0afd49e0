"""The collector's environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import settings


def test_no_settings_give_the_documented_defaults():
    s = settings.from_env({})
    assert s.mqtt == settings.MqttAddress("127.0.0.1", 1883, None, None)
    assert s.influx_url == "http://127.0.0.1:8086"
    assert s.influx_db == "service_quality"
    assert s.influx_token is None
    assert s.topic_root == "svc/v1"
    assert s.state_dir == Path("collector-state")


def test_every_setting_is_taken_from_the_environment():
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


SAMPLE = Path(__file__).resolve().parent.parent / "collector" / "sample.toml"


def test_the_sample_file_loads():
    s = settings.load({}, SAMPLE)
    assert s.mqtt == settings.MqttAddress(
        "broker.hall.example", 8883, "collector", "change-me", tls=True
    )
    assert s.mqtt_ca_file == Path("/etc/mosquitto/svc/ca.crt")
    assert s.known_devices == Path("/etc/mosquitto/svc/devices.txt")
    assert (s.client_id, s.batch_max, s.state_dir) == (
        "svc-collector-1",
        5000,
        Path("/var/lib/svc-collector"),
    )


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('influx_db = "from_file"\nbatch_max = 10\ntopic_root = "x/v1"\n')
    s = settings.load({"SVC_CONFIG": str(path), "SVC_INFLUX_DB": "from_env"})
    assert (s.influx_db, s.batch_max, s.topic_root) == ("from_env", 10, "x/v1")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("influx_bd = 'x'", "unknown settings"),
        ("batch_max = [1]", "string or a number"),
        ("batch_max = ", r"c\.toml"),
        ("batch_max = true", "string or a number"),
    ],
)
def test_bad_files_are_named(tmp_path, text, why):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(settings.SettingsError, match=why):
        settings.load({}, path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(settings.SettingsError, match=r"nope\.toml"):
        settings.load({"SVC_CONFIG": str(tmp_path / "nope.toml")})


def test_mqtts_is_tls_on_8883_and_the_password_is_shown_nowhere():
    s = settings.from_env(
        {
            "SVC_MQTT_URL": "mqtts://collector-1:s3cret-pw@broker.h1",
            "SVC_MQTT_CA_FILE": "/etc/mosquitto/svc/ca.crt",
            "SVC_KNOWN_DEVICES": "/etc/mosquitto/svc/devices.txt",
        }
    )
    assert s.mqtt == settings.MqttAddress("broker.h1", 8883, "collector-1", "s3cret-pw", tls=True)
    assert s.mqtt_ca_file == Path("/etc/mosquitto/svc/ca.crt")
    assert "s3cret-pw" not in repr(s)
    with pytest.raises(settings.SettingsError) as bad:
        settings.from_env({"SVC_MQTT_URL": "amqp://c:s3cret-pw@broker"})
    assert "s3cret-pw" not in str(bad.value)
