"""Firmware logic under CPython: persistence, settings, message encoding, the MQTT client."""

from __future__ import annotations

import asyncio
import json
import os

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector import device as collector_device
from collector import rating as collector_rating
from collector.topics import DeviceTopic
from fwtools.unix_port import firmware_module
from tests.samples import RATING_EXAMPLE
from tests.servers import wait_for

store = firmware_module("store")
settings = firmware_module("settings")
protocol = firmware_module("protocol")
contract = firmware_module("contract")
mqtt = firmware_module("mqtt")


def test_boot_counts_up_and_seq_carries_on(tmp_path):
    path = str(tmp_path / "counters.json")
    first = store.Counters(path)
    assert (first.boot, first.seq) == (0, 0)
    assert [first.next_seq(), first.next_seq()] == [1, 2]
    again = store.Counters(path)
    assert (again.boot, again.seq) == (1, 2)
    assert again.next_seq() == 3


def test_a_torn_write_leaves_the_last_complete_counters(tmp_path):
    path = str(tmp_path / "counters.json")
    counters = store.Counters(path)
    counters.next_seq()
    (tmp_path / "counters.json.tmp").write_text('{"boot": 9, "se')  # power cut mid-write
    again = store.Counters(path)
    assert (again.boot, again.seq) == (1, 1)
    assert not os.path.exists(path + ".tmp")


def test_a_settings_file_gives_the_broker_address_and_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"site": "sjz-yuhua", "device": "ev-1", "broker": "mqtt://u:p@h:1"}))
    loaded = settings.load(str(path))
    assert loaded["broker_addr"] == ("h", 1, "u", "p")
    assert (loaded["topic_root"], loaded["queue_bytes"], loaded["clerk_key"]) == (
        "svc/v1",
        256 * 1024,
        True,
    )
    path.write_text(json.dumps({"site": "SJZ", "device": "ev-1"}))
    with pytest.raises(settings.SettingsError, match="site"):
        settings.load(str(path))


CA = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"broker": "mqtt://h:abc"}, "broker URL's port must be a whole number from 1 to 65535"),
        ({"broker": "mqtt://h:65536"}, "broker URL's port must be a whole number"),
        ({"broker": "mqtts://h", "broker_ca": 7}, "broker_ca must be text or null"),
        (
            {"broker": "mqtts://h", "broker_ca": CA % "MIIBx"},
            "broker_ca's certificate is not base64",
        ),
        ({"broker_user": {"name": "u"}}, "broker_user must be text or null"),
        ({"wifi_ssid": ["hall"]}, "wifi_ssid must be text or null"),
        ({"wifi_ssid": True}, "wifi_ssid must be text or null"),
        ({"topic_root": None}, "topic_root must be text"),
        ({"ntp_host": 123}, "ntp_host must be text"),
        ({"clerk_key": 1}, "clerk_key must be true or false"),
        ({"voice_module": "no"}, "voice_module must be true or false"),
        ({"keepalive_s": "x"}, "keepalive_s must be a whole number from 1 to 65535"),
        ({"keepalive_s": True}, "keepalive_s must be a whole number"),
        ({"keepalive_s": 30.0}, "keepalive_s must be a whole number"),
        ({"keepalive_s": 0}, "keepalive_s must be a whole number"),
        ({"queue_bytes": 16 * 1024 * 1024 + 1}, "queue_bytes must be a whole number from 1 to"),
        ({"reconnect_max_s": 3601}, "reconnect_max_s must be a whole number from 1 to 3600"),
    ],
)
def test_a_setting_of_the_wrong_type_or_range_is_refused_by_name(tmp_path, changes, why):
    """Refused at boot (the board shows why), not failed on later far from the cause."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"site": "sjz-yuhua", "device": "ev-1", **changes}))
    with pytest.raises(settings.SettingsError) as refused:
        settings.load(str(path))
    assert why in str(refused.value)


def test_settings_at_the_ends_of_their_ranges_are_taken(tmp_path):
    path = tmp_path / "settings.json"
    edges = {
        "broker": "mqtts://u:p@h:65535",
        "broker_ca": CA % "MIIB",
        "wifi_ssid": None,
        "wifi_password": None,
        "topic_root": "",
        "clerk_key": False,
        "keepalive_s": 65535,
        "queue_bytes": 1,
        "reconnect_max_s": 3600,
    }
    path.write_text(json.dumps({"site": "sjz-yuhua", "device": "ev-1", **edges}))
    loaded = settings.load(str(path))
    assert loaded["broker_addr"] == ("h", 65535, "u", "p") and loaded["tls_ca"] == b"0\x82\x01"
    lows = {"site": "sjz-yuhua", "broker": "mqtt://h:1", "keepalive_s": 1, "reconnect_max_s": 1}
    path.write_text(json.dumps(lows))
    assert settings.load(str(path), "ev-2")["broker_addr"] == ("h", 1, None, None)


def test_a_settings_file_that_is_no_object_is_refused(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('["site"]')
    with pytest.raises(settings.SettingsError, match="must be a JSON object"):
        settings.load(str(path))


@pytest.mark.parametrize(
    ("url", "addr"),
    [
        ("mqtt://broker", ("broker", 1883, None, None)),
        ("mqtt://broker:1884/", ("broker", 1884, None, None)),
        ("mqtt://dev@broker", ("broker", 1883, "dev", None)),
        ("mqtt://dev:s:e:cret@broker:1", ("broker", 1, "dev", "s:e:cret")),
    ],
)
def test_broker_urls_give_host_port_and_credentials(url, addr):
    assert settings.parse_broker_url(url) == addr


@pytest.mark.parametrize("url", ["tcp://broker", "mqtt://", "mqtt://:1883"])
def test_bad_broker_urls_are_refused(url):
    with pytest.raises(settings.SettingsError):
        settings.parse_broker_url(url)


def test_rating_message_has_the_contract_fields_and_the_collector_takes_it():
    message = contract.rating(**{k: v for k, v in RATING_EXAMPLE.items() if k != "v"})
    assert message == RATING_EXAMPLE  # the contract's example (docs/contract.md), version filled in
    encoded = protocol.encode(message)
    assert b" " not in encoded
    parsed = collector_rating.parse(DeviceTopic("s", "d", "rating"), encoded)
    assert (parsed.seq, parsed.score, parsed.wait_ms) == (1042, 4, 1830)


def test_state_messages_carry_online_fw_boot_and_the_login():
    assert protocol.state(False) == {"v": 1, "online": False}  # the will, as it always was
    fw = protocol.FW_VERSION
    base = {"v": 1, "online": True, "fw": fw, "boot": 3}
    assert protocol.state(True, 3) == {**base, "counter": None, "staff": None}  # nobody set
    state = protocol.encode(protocol.state(True, 3, "03", "E1023"))
    assert json.loads(state) == {**base, "counter": "03", "staff": "E1023"}
    stored = collector_device.state(DeviceTopic("s", "d", "state"), state, 1)
    assert stored is not None  # the collector takes it and stores no login
    assert stored.point() == f'device,device=d,site=s online=1i,boot=3i,fw="{fw}" 1'


def test_clock_counts_from_1970():
    assert protocol.EPOCH_OFFSET_MS == 0  # CPython's epoch
    assert protocol.unix_ms() > 1_700_000_000_000


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_mqtt_client_receives_retained_and_acks_qos1(mosquitto):
    sender = paho.Client(CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", mosquitto.port)
    sender.loop_start()
    sender.publish("t/fw/config", b'{"v":1}', qos=1, retain=True).wait_for_publish(5)
    sender.disconnect()
    sender.loop_stop()

    async def scenario():
        client = mqtt.MQTTClient("fw-logic-2", "127.0.0.1", mosquitto.port, keepalive=10)
        got = []
        client.on_message = lambda topic, payload, retained: got.append((topic, payload, retained))
        await client.connect(clean_session=True)
        await client.subscribe("t/fw/config", qos=1)
        reader = asyncio.create_task(client.read_loop())
        while not got:
            await asyncio.sleep(0.01)
        reader.cancel()
        await client.disconnect()
        return got

    assert run(scenario()) == [("t/fw/config", b'{"v":1}', True)]


def test_mqtt_last_will_is_published_when_the_link_dies(mosquitto):
    wills = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda _c, _u, msg: wills.append(msg.payload)
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("t/fw/will", qos=1)
    watcher.loop_start()

    async def scenario():
        client = mqtt.MQTTClient("fw-logic-3", "127.0.0.1", mosquitto.port, keepalive=10)
        client.set_last_will("t/fw/will", b'{"v":1,"online":false}', retain=False, qos=1)
        await client.connect(clean_session=True)
        await client.close()  # no DISCONNECT: the broker must send the will

    try:
        run(scenario())
        wait_for(lambda: wills, timeout_s=5, every_s=0.05)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    assert wills == [b'{"v":1,"online":false}']


def test_mqtt_refused_connection_is_an_error(mosquitto):
    async def scenario():
        client = mqtt.MQTTClient("", "127.0.0.1", mosquitto.port)  # empty id without clean session
        await client.connect(clean_session=False)

    with pytest.raises(mqtt.MQTTError, match="refused"):
        run(scenario())
