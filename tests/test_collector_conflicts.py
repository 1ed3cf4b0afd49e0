"""A seq sent again with other content is a conflict: dead-lettered, acknowledged, never stored
beside its original."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.samples import RATING_EXAMPLE as EXAMPLE
from tests.servers import subscribe, wait_for
from tests.test_collector_service import DEVICE_TOPIC, dead_letters, publish


def ratings(influxdb, database):
    return influxdb.query("SELECT * FROM rating", database)


def conflicts(collector):
    return [d for d in dead_letters(collector) if d["kind"] == "conflict"]


def test_a_changed_copy_is_a_conflict_and_the_original_stays(
    collector, publisher, influxdb, database, topic_root
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, json.dumps(EXAMPLE).encode())
    assert wait_for(lambda: len(ratings(influxdb, database)) == 1)
    changed = [
        {**EXAMPLE, "staff": "E9999"},  # another clerk: another series
        {**EXAMPLE, "reason": "attitude", "score": 1},  # another reason and score
        {**EXAMPLE, "ts": EXAMPLE["ts"] + 60_000},  # another time, a minute on
        {**EXAMPLE, "wait_ms": 10},  # same point, other field: would overwrite
        {**EXAMPLE, "aspects": {"attitude": 4, "efficiency": 5}},  # and fields it lacked
    ]
    for message in changed:
        publish(publisher, topic, json.dumps(message).encode())
    publish(publisher, topic, json.dumps(EXAMPLE).encode())  # a true copy: no conflict
    assert wait_for(lambda: len(conflicts(collector)) == 5), dead_letters(collector)
    time.sleep(0.5)
    [stored] = ratings(influxdb, database)
    assert (stored["staff"], stored["score"], stored["wait_ms"]) == ("E1023", 4, 1830)
    assert all("seq already stored" in d["reason"] for d in conflicts(collector))
    assert "staff 'E1023' -> 'E9999'" in conflicts(collector)[0]["reason"]


def test_two_copies_in_one_batch_keep_the_first(
    collector, publisher, influxdb, database, topic_root
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    first = {**EXAMPLE, "seq": 7}
    publisher.publish(topic, json.dumps(first).encode(), qos=1)
    publisher.publish(topic, json.dumps({**first, "staff": "E2"}).encode(), qos=1)
    assert wait_for(lambda: len(conflicts(collector)) == 1), dead_letters(collector)
    assert wait_for(lambda: len(ratings(influxdb, database)) == 1)
    assert ratings(influxdb, database)[0]["staff"] == "E1023"


def test_a_conflict_is_acknowledged_to_its_terminal(collector, mosquitto, publisher, topic_root):
    """Dead-lettered, it is kept for review: its terminal may forget it."""
    got: list[dict] = []
    seen = threading.Event()
    terminal = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ack-{topic_root[:9]}")

    def on_message(_c, _u, msg):
        got.append(json.loads(msg.payload))
        seen.set()

    terminal.on_message = on_message
    terminal.connect("127.0.0.1", mosquitto.port)
    terminal.loop_start()
    try:
        subscribe(terminal, DEVICE_TOPIC.format(root=topic_root).replace("/rating", "/ack"))
        topic = DEVICE_TOPIC.format(root=topic_root)
        publish(publisher, topic, json.dumps(EXAMPLE).encode())
        assert seen.wait(10)
        seen.clear()
        publish(publisher, topic, json.dumps({**EXAMPLE, "staff": "E2"}).encode())
        assert seen.wait(10)
    finally:
        terminal.loop_stop()
        terminal.disconnect()
    assert got == [{"v": 1, "seqs": [1042]}, {"v": 1, "seqs": [1042]}]
    assert len(conflicts(collector)) == 1
