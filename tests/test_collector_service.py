"""svc-collector as a process against the real broker and database."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion

from tests.samples import RATING_EXAMPLE as EXAMPLE
from tests.servers import start_collector, subscribe, wait_for

DEVICE_TOPIC = "{root}/sjz-yuhua/ev-a1b2c3d4e5f6/rating"


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)


def dead_letters(collector) -> list[dict]:
    path = collector.state_dir / "deadletter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_rating_sent_many_times_is_stored_once(
    collector, publisher, influxdb, database, topic_root
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    body = json.dumps(EXAMPLE).encode()
    for _ in range(20):
        publish(publisher, topic, body)
    second = json.dumps({**EXAMPLE, "seq": 1043, "ts": EXAMPLE["ts"] + 5000}).encode()
    publish(publisher, topic, second)
    rows = wait_for(lambda: len(influxdb.query("SELECT * FROM rating", database)) == 2)
    assert rows, influxdb.query("SELECT * FROM rating", database)
    time.sleep(0.5)  # let any late duplicate land before counting again
    assert [r["seq"] for r in influxdb.query("SELECT * FROM rating", database)] == [1042, 1043]


def test_bad_input_is_dead_lettered_and_good_input_around_it_is_stored(
    collector, publisher, influxdb, database, topic_root
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    bad = [
        (topic, b"{oops", "malformed_json"),
        (topic, json.dumps({**EXAMPLE, "score": "5"}).encode(), "wrong_type"),
        (
            topic,
            json.dumps({**EXAMPLE, "score": 5, "reason": "attitude"}).encode(),
            "contradiction",
        ),
        (topic, b" " * 5000, "oversize"),
        (f"{topic_root}/SJZ/ev-1/rating", json.dumps(EXAMPLE).encode(), "bad_topic"),
    ]
    for seq, (bad_topic, bad_payload, _) in enumerate(bad, start=1):
        publish(publisher, bad_topic, bad_payload)
        good = {**EXAMPLE, "seq": seq, "ts": EXAMPLE["ts"] + seq}
        publish(publisher, topic, json.dumps(good).encode())

    assert wait_for(lambda: len(dead_letters(collector)) == len(bad))
    records = dead_letters(collector)
    assert [r["kind"] for r in records] == [kind for _, _, kind in bad]
    assert all(r["reason"] for r in records)
    assert records[0]["payload"] == "{oops"
    rows = wait_for(lambda: len(influxdb.query("SELECT seq FROM rating", database)) == len(bad))
    assert rows
    assert [r["seq"] for r in influxdb.query("SELECT seq FROM rating", database)] == [1, 2, 3, 4, 5]
    assert '"rejected"' in collector.log()


def test_telemetry_and_state_become_device_points(
    collector, publisher, influxdb, database, topic_root
):
    base = f"{topic_root}/sjz-yuhua/ev-a1b2c3d4e5f6"
    telemetry = {
        "v": 1,
        "boot": 3,
        "uptime_s": 60,
        "rssi": -55,
        "heap_free": 40000,
        "queue": 2,
        "fw": "0.2.0",
        "battery_mv": None,
        "prompts": 5,
        "rated": 4,
        "skipped": 1,
        "stray": 0,
    }
    publish(publisher, f"{base}/telemetry", json.dumps(telemetry).encode())
    publish(publisher, f"{base}/state", b'{"v":1,"online":false}')
    rows = wait_for(lambda: len(influxdb.query("SELECT * FROM device", database)) == 2)
    assert rows
    first, second = influxdb.query("SELECT * FROM device", database)
    assert (first["device"], first["site"], first["queue"], first["online"]) == (
        "ev-a1b2c3d4e5f6",
        "sjz-yuhua",
        2,
        1,
    )
    assert first.get("battery_mv") is None  # null: left out
    assert second["online"] == 0 and second["queue"] is None


def test_a_rating_without_ts_is_stored_once_however_often_it_comes(
    mosquitto, influxdb, tmp_path, topic_root, database, publisher
):
    """Its time is its first receipt, found again on every replay, after a restart too."""
    topic = DEVICE_TOPIC.format(root=topic_root)
    undated = json.dumps({**EXAMPLE, "ts": None, "seq": 77}).encode()
    first_sent_ms = time.time() * 1000
    for _round in range(2):
        proc = start_collector(
            mosquitto, influxdb, tmp_path / "collector", topic_root, database, "undated"
        )
        for _ in range(3):
            publish(publisher, topic, undated)
            time.sleep(0.3)  # each copy after the last one's batch: found again, not batched
        assert wait_for(lambda: influxdb.query("SELECT * FROM rating", database))
        assert proc.stop() == 0
    rows = influxdb.query("SELECT * FROM rating", database)
    assert len(rows) == 1
    [row] = rows
    assert (row["seq"], row["undated"], row["score"]) == (77, 1, 4)
    assert row.get("delay_ms") is None
    assert first_sent_ms - 1000 <= row["time"] // 10**6 <= first_sent_ms + 2000
    assert row["time"] % 10**6 == 77


def test_metrics_count_stored_and_rejected_and_health_answers(
    collector, publisher, influxdb, database, topic_root
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, json.dumps(EXAMPLE).encode())
    publish(publisher, topic, b"{broken")
    assert wait_for(lambda: influxdb.query("SELECT * FROM rating", database))
    base = f"http://{collector.http_address()}"
    health = requests.get(f"{base}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "broker": True, "influx": True}

    def metric(name: str) -> float:
        text = requests.get(f"{base}/metrics", timeout=5).text
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")
        ]
        return sum(values)

    assert wait_for(lambda: metric('svc_messages_rejected_total{reason="malformed_json"}') == 1)
    assert metric('svc_messages_received_total{kind="rating"}') == 2
    assert metric('svc_points_stored_total{measurement="rating"}') == 1
    assert metric("svc_influx_write_seconds_count") >= 1
    assert metric("svc_messages_pending") == 0
    assert requests.get(f"{base}/nothing", timeout=5).status_code == 404


def test_a_poor_rating_is_alerted_within_a_second_and_suspects_are_flagged(
    collector, publisher, mosquitto, influxdb, database, topic_root
):
    alerts: list[tuple[float, dict]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alert-watcher")
    watcher.on_message = lambda _c, _u, msg: alerts.append(
        (time.monotonic(), json.loads(msg.payload))
    )
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.loop_start()
    try:
        subscribe(watcher, f"{topic_root}/+/alert")
        topic = DEVICE_TOPIC.format(root=topic_root)
        poor = {**EXAMPLE, "seq": 1, "score": 1, "reason": "attitude"}
        sent = time.monotonic()
        publish(publisher, topic, json.dumps(poor).encode())
        fast = {**EXAMPLE, "seq": 2, "ts": EXAMPLE["ts"] + 60_000, "wait_ms": 150}
        publish(publisher, topic, json.dumps(fast).encode())
        assert wait_for(lambda: alerts, timeout_s=5)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    at, alert = alerts[0]
    assert at - sent < 1.0
    assert (alert["kind"], alert["seq"], alert["score"], alert["reason"]) == (
        "poor_rating",
        1,
        1,
        "attitude",
    )
    assert (alert["site"], alert["device"], alert["counter"]) == (
        "sjz-yuhua",
        "ev-a1b2c3d4e5f6",
        "03",
    )
    rows = wait_for(lambda: len(influxdb.query("SELECT * FROM rating", database)) == 2)
    assert rows
    first, second = influxdb.query("SELECT * FROM rating", database)
    assert first["suspect"] == 0 and first.get("suspect_why") is None
    assert (second["suspect"], second["suspect_why"]) == (1, "fast_press")


def test_three_collectors_share_the_load_and_survive_a_kill(
    mosquitto, influxdb, tmp_path, topic_root, database, publisher
):
    """One of three is killed mid-stream and restarted with its client id: all stored once."""
    group = f"g{topic_root[1:9]}"
    collectors = [
        start_collector(
            mosquitto,
            influxdb,
            tmp_path / f"c{n}",
            topic_root,
            database,
            f"c{n}",
            share_group=group,
        )
        for n in range(3)
    ]
    sent = 1500
    try:
        for seq in range(1, sent + 1):
            body = {**EXAMPLE, "seq": seq, "ts": EXAMPLE["ts"] + seq * 1000}
            device = f"ev-{seq % 7}"
            publisher.publish(f"{topic_root}/sjz-yuhua/{device}/rating", json.dumps(body), qos=1)
            if seq == sent // 3:
                collectors[1].kill()
            if seq == sent // 2:
                collectors[1].start()
            if seq % 100 == 0:
                time.sleep(0.05)

        def count() -> int:
            rows = influxdb.query("SELECT count(score) FROM rating", database)
            return int(rows[0]["count"]) if rows else 0

        assert wait_for(lambda: count() >= sent, timeout_s=60), count()
        time.sleep(1)
        assert count() == sent
    finally:
        codes = [proc.stop() for proc in collectors]
    assert codes == [0, 0, 0]
    shares = [proc.log().count('"subscribed"') for proc in collectors]
    assert shares == [1, 2, 1]  # the killed one came back
    per_device = influxdb.query("SELECT count(score) FROM rating GROUP BY device", database)
    assert sum(int(r["count"]) for r in per_device) == sent
