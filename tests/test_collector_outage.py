"""InfluxDB down mid-stream: the collector spools to disk, then writes it all in order."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion

from devstack import InfluxServer
from tests.samples import RATING_EXAMPLE
from tests.servers import start_collector, wait_for


def send(client, root: str, seqs: range) -> None:
    for seq in seqs:
        body = {**RATING_EXAMPLE, "seq": seq, "ts": RATING_EXAMPLE["ts"] + seq * 1000}
        topic = f"{root}/sjz-yuhua/ev-{seq % 5}/rating"
        client.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)


def stored(influx: InfluxServer, db: str) -> list[int]:
    try:
        return sorted(r["seq"] for r in influx.query("SELECT seq FROM rating", db))
    except Exception:
        return []


def wait_stored(influx: InfluxServer, db: str, count: int, timeout_s: float = 60) -> list[int]:
    return wait_for(lambda: stored(influx, db), lambda found: len(found) >= count, timeout_s)


def outage_collector(broker, influx, tmp_path, root: str, database: str, **settings: str):
    """A collector of this file's, not started: each test starts it when its outage is set."""
    folder = tmp_path / "collector"
    return start_collector(
        broker, influx, folder, root, database, "outage", start=False, **settings
    )


def test_influxdb_down_for_30_s_loses_nothing(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    collector = outage_collector(mosquitto, own_influx, tmp_path, topic_root, database)
    collector.start()
    try:
        send(publisher, topic_root, range(1, 101))
        assert len(wait_stored(own_influx, database, 100)) == 100
        own_influx.stop()
        down_at = time.monotonic()
        send(publisher, topic_root, range(101, 301))
        assert collector.wait_logged("spooled")
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        own_influx.restart()
        send(publisher, topic_root, range(301, 401))
        found = wait_stored(own_influx, database, 400)
    finally:
        assert collector.stop() == 0
    assert found == list(range(1, 401))  # every one, once
    assert not list((tmp_path / "collector" / "spool").glob("*.jsonl"))
    assert '"spool_written"' in collector.log()


def test_a_collector_started_while_influxdb_is_down_takes_messages_into_its_spool(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    own_influx.stop()
    collector = outage_collector(mosquitto, own_influx, tmp_path, topic_root, database)
    collector.start()  # subscribed at once, without waiting for InfluxDB
    try:
        send(publisher, topic_root, range(1, 51))
        spool = tmp_path / "collector" / "spool"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            spooled = sum(len(p.read_text().splitlines()) for p in spool.glob("*.jsonl"))
            if spooled == 50:
                break
            time.sleep(0.2)
        assert spooled == 50  # taken from the broker and acknowledged, safe on disk
        own_influx.restart()
        found = wait_stored(own_influx, database, 50)  # the database made, then the spool
    finally:
        assert collector.stop() == 0
    assert found == list(range(1, 51))


def test_a_full_spool_stops_acknowledging_and_the_broker_holds_the_rest(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    collector = outage_collector(
        mosquitto,
        own_influx,
        tmp_path,
        topic_root,
        database,
        spool_bytes="3000",
    )
    collector.start()
    try:
        send(publisher, topic_root, range(1, 3))
        assert len(wait_stored(own_influx, database, 2)) == 2
        own_influx.stop()
        send(publisher, topic_root, range(3, 103))
        assert collector.wait_logged("spool_full")
        spooled = sum(p.stat().st_size for p in (tmp_path / "collector" / "spool").glob("*.jsonl"))
        assert spooled <= 3000  # a batch that would not fit was not spooled at all
        own_influx.restart()
        found = wait_stored(own_influx, database, 102, timeout_s=90)
    finally:
        assert collector.stop() == 0
    assert found == list(range(1, 103))


def test_a_spool_left_by_a_stop_is_written_at_the_next_start(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    collector = outage_collector(mosquitto, own_influx, tmp_path, topic_root, database)
    collector.start()
    send(publisher, topic_root, range(1, 2))
    assert len(wait_stored(own_influx, database, 1)) == 1
    own_influx.stop()
    send(publisher, topic_root, range(2, 22))
    assert collector.wait_logged("spooled")
    assert collector.stop() == 0
    assert list((tmp_path / "collector" / "spool").glob("*.jsonl"))
    own_influx.restart()
    collector.start()
    try:
        found = wait_stored(own_influx, database, 21)
    finally:
        assert collector.stop() == 0
    assert found == list(range(1, 22))


def test_a_collector_killed_mid_batch_loses_and_doubles_nothing(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    """Killed while it holds a batch it has not acknowledged; restarted with its client id."""
    collector = outage_collector(
        mosquitto,
        own_influx,
        tmp_path,
        topic_root,
        database,
        batch_linger_ms="3000",
        batch_max="100000",
    )
    collector.start()
    send(publisher, topic_root, range(1, 201))
    time.sleep(0.5)
    collector.kill()  # the batch was taken off MQTT, not yet written nor acknowledged
    assert stored(own_influx, database) == []
    send(publisher, topic_root, range(201, 301))  # the broker keeps these for the dead session
    collector.start()
    try:
        found = wait_stored(own_influx, database, 300)
        time.sleep(1)
        found = stored(own_influx, database)
    finally:
        assert collector.stop() == 0
    assert found == list(range(1, 301))


def test_a_batch_of_only_bad_input_is_not_spooled(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    """With a batch already spooled, a batch that is all dead letters adds nothing to it."""
    collector = outage_collector(mosquitto, own_influx, tmp_path, topic_root, database)
    collector.start()
    spool = tmp_path / "collector" / "spool"
    try:
        own_influx.stop()
        send(publisher, topic_root, range(1, 2))
        assert collector.wait_logged("spooled")
        publisher.publish(
            f"{topic_root}/sjz-yuhua/ev-1/rating", b"{broken", qos=1
        ).wait_for_publish(5)
        assert collector.wait_logged("rejected")
        time.sleep(0.5)
        assert [len(p.read_text().splitlines()) for p in spool.glob("*.jsonl")] == [1]
        own_influx.restart()
        send(publisher, topic_root, range(2, 3))
        found = wait_stored(own_influx, database, 2)
    finally:
        assert collector.stop() == 0
    assert found == [1, 2]


def test_health_answers_503_while_influxdb_or_the_broker_is_down(
    own_broker, own_influx, tmp_path, topic_root, database
):
    broker = own_broker
    collector = outage_collector(
        broker,
        own_influx,
        tmp_path,
        topic_root,
        database,
        http="127.0.0.1:0",
    )
    collector.start()

    def health() -> tuple[int, dict]:
        reply = requests.get(f"http://{collector.http_address()}/healthz", timeout=5)
        return reply.status_code, reply.json()

    def becomes(expected: tuple[int, dict], timeout_s: float = 30) -> bool:
        deadline = time.monotonic() + timeout_s
        while health() != expected:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    try:
        assert health() == (200, {"status": "ok", "broker": True, "influx": True})
        own_influx.stop()
        assert becomes((503, {"status": "failing", "broker": True, "influx": False}))
        own_influx.restart()
        assert becomes((200, {"status": "ok", "broker": True, "influx": True}))
        broker.stop()
        assert becomes((503, {"status": "failing", "broker": False, "influx": True}))
        broker.restart()
        assert becomes((200, {"status": "ok", "broker": True, "influx": True}))
        assert collector.wait_logged("mqtt_connected", 2)
    finally:
        assert collector.stop() == 0


def test_a_broker_restart_is_ridden_out_and_the_session_brings_back_the_rest(
    own_broker, own_influx, tmp_path, topic_root, database
):
    broker = own_broker
    collector = outage_collector(broker, own_influx, tmp_path, topic_root, database)
    collector.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sender-{topic_root[:9]}")
    try:
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        send(sender, topic_root, range(1, 51))
        assert len(wait_stored(own_influx, database, 50)) == 50
        broker.stop()
        assert collector.wait_logged("mqtt_unreachable", 2)  # it keeps trying, backing off
        broker.restart()
        deadline = time.monotonic() + 20
        while not sender.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        send(sender, topic_root, range(51, 151))  # queued in its session until it is back
        found = wait_stored(own_influx, database, 150)
        assert collector.wait_logged("mqtt_connected", 2)
    finally:
        sender.loop_stop()
        assert collector.stop() == 0
    assert found == list(range(1, 151))
    unreachable = [
        json.loads(line) for line in collector.log().splitlines() if "mqtt_unreachable" in line
    ]
    waits = [entry["retry_in_s"] for entry in unreachable]
    assert waits[:2] == [1.0, 2.0]
    reconnected = [
        json.loads(line) for line in collector.log().splitlines() if "mqtt_connected" in line
    ]
    assert reconnected[-1]["session_present"] is True
