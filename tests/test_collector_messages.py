"""Rating messages and topics checked against the contract (docs/contract.md), and the points
they become."""

from __future__ import annotations

import json

import pytest

from collector import device, rating, topics
from collector.checks import Rejected
from collector.influx import InfluxHttp
from collector.topics import DeviceTopic
from firmware import contract
from tests.samples import RATING_EXAMPLE

WHERE = DeviceTopic("sjz-yuhua", "ev-a1b2c3d4e5f6", "rating")
EXAMPLE = RATING_EXAMPLE


def payload(**changes: object) -> bytes:
    return json.dumps({**EXAMPLE, **changes}).encode()


def test_protocol_example_becomes_the_documented_point():
    parsed = rating.parse(WHERE, payload())
    assert parsed.point(received_ms=1795347568123 + 250) == (
        "rating,counter=03,device=ev-a1b2c3d4e5f6,mode=prompt,site=sjz-yuhua,staff=E1023 "
        "score=4i,satisfied=1i,good=1i,poor=0i,"
        "rated=1i,seq=1042i,wait_ms=1830i,delay_ms=250i,suspect=0i "
        "1795347568123001042"
    )


def test_skipped_rating_has_no_score_and_rated_zero():
    point = rating.parse(WHERE, payload(score=None)).point(1795347568123)
    assert "score=" not in point
    assert "satisfied=" not in point and "good=" not in point and "poor=" not in point
    assert "rated=0i" in point


def test_poor_rating_carries_its_reason_as_a_tag():
    point = rating.parse(WHERE, payload(score=1, reason="attitude")).point(1795347568123)
    assert point.startswith("rating,counter=03,device=ev-a1b2c3d4e5f6,mode=prompt,reason=attitude,")


def test_seq_fills_the_sub_millisecond_digits():
    point = rating.parse(WHERE, payload(seq=3_000_007)).point(1795347568123)
    assert point.endswith(" 1795347568123000007")


def test_unknown_fields_are_ignored_for_compatible_extensions():
    assert rating.parse(WHERE, payload(extra="later")).seq == 1042


def test_unknown_counter_and_staff_are_left_out():
    point = rating.parse(WHERE, payload(counter=None, staff=None)).point(1795347568123)
    assert "counter=" not in point and "staff=" not in point


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (payload(v=2), "unknown_version"),
        (payload(seq="12"), "wrong_type"),
        (payload(seq=True), "wrong_type"),
        (payload(seq=0), "out_of_range"),
        (payload(score=6), "out_of_range"),
        (payload(score=4.0), "wrong_type"),
        (payload(boot=-1), "out_of_range"),
        (payload(mode="always"), "bad_field"),
        (payload(mode=[]), "bad_field"),  # found by hypothesis: was a TypeError
        (payload(score=1, reason={"x": 1}), "bad_field"),
        (payload(counter="03 04"), "bad_field"),
        (payload(staff="x" * 17), "bad_field"),
        (payload(score=1, reason="rude"), "bad_field"),
        (payload(score=5, reason="attitude"), "contradiction"),
        (payload(score=None, reason="attitude"), "contradiction"),
        (payload(ticket="x" * 4096), "oversize"),
        (payload(ts=contract.MAX_TS_MS + 1), "out_of_range"),  # after 2262: no point time
        (payload(seq=2**63), "out_of_range"),  # InfluxDB's integers end at 2**63 - 1
        (payload(wait_ms=2**63), "out_of_range"),
    ],
)
def test_bad_payloads_are_rejected_with_their_kind(raw, kind):
    with pytest.raises(Rejected) as rejected:
        rating.parse(WHERE, raw)
    assert rejected.value.kind == kind
    assert str(rejected.value)


def test_the_last_storable_press_time_is_taken():
    last = rating.parse(WHERE, payload(ts=contract.MAX_TS_MS, seq=999_999))
    time_ns = int(last.point(contract.MAX_TS_MS).rsplit(" ", 1)[1])
    assert time_ns <= 2**63 - 2  # InfluxDB's latest time


def test_influxdb_takes_the_last_storable_press_time(influxdb, database):
    writer = InfluxHttp(influxdb.url, database)
    writer.ensure_database()
    last = rating.parse(WHERE, payload(ts=contract.MAX_TS_MS, seq=999_999))
    writer.write([last.point(contract.MAX_TS_MS)])
    assert writer.query("SELECT count(seq) FROM rating")[0]["count"] == 1


def test_a_topic_names_its_site_device_and_kind():
    assert topics.parse("svc/v1/sjz-yuhua/ev-1/rating", "svc/v1") == DeviceTopic(
        "sjz-yuhua", "ev-1", "rating"
    )


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/sjz-yuhua/ev-1/rating",
        "svc/v1/SJZ/ev-1/rating",
        "svc/v1/sjz-yuhua/-ev/rating",
        "svc/v1/sjz-yuhua/ev-1/rating/extra",
        "svc/v1/sjz-yuhua/rating",
        "svc/v1/" + "a" * 33 + "/ev-1/rating",
    ],
)
def test_forged_or_malformed_topics_are_refused(topic):
    with pytest.raises(topics.TopicError):
        topics.parse(topic, "svc/v1")


TELEMETRY = {
    "v": 1,
    "boot": 17,
    "uptime_s": 3600,
    "rssi": -61,
    "heap_free": 41232,
    "queue": 0,
    "fw": "1.0.0",
    "battery_mv": None,
    "prompts": 120,
    "rated": 97,
    "skipped": 23,
    "stray": 4,
}
DEVICE = DeviceTopic("sjz-yuhua", "ev-a1b2c3d4e5f6", "telemetry")


def test_protocol_telemetry_becomes_a_device_point_at_receipt_time():
    point = device.telemetry(DEVICE, json.dumps(TELEMETRY).encode(), 1795347568123000000).point()
    assert point == (
        "device,device=ev-a1b2c3d4e5f6,site=sjz-yuhua "
        "uptime_s=3600i,heap_free=41232i,queue=0i,prompts=120i,rated=97i,skipped=23i,stray=4i,"
        'boot=17i,rssi=-61i,fw="1.0.0",online=1i 1795347568123000000'
    )


def test_telemetry_extensions_are_kept():
    body = {**TELEMETRY, "dropped": 2, "stuck_keys": [1, 3], "time_known": False}
    point = device.telemetry(DEVICE, json.dumps(body).encode(), 1).point()
    assert "dropped=2i" in point and "stuck_keys=2i" in point and "time_known=0i" in point


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"rssi": "-61"}, "wrong_type"),
        ({"queue": -1}, "out_of_range"),
        ({"v": 3}, "unknown_version"),
        ({"stuck_keys": "2"}, "wrong_type"),
        ({"fw": "1.0 beta"}, "bad_field"),
    ],
)
def test_bad_telemetry_is_rejected(changes, kind):
    with pytest.raises(Rejected) as rejected:
        device.telemetry(DEVICE, json.dumps({**TELEMETRY, **changes}).encode(), 1).point()
    assert rejected.value.kind == kind


def test_state_and_last_will_become_online_points():
    online = device.state(DEVICE, b'{"v":1,"online":true,"fw":"1.0.0","boot":17}', 5000000)
    assert online is not None and online.point() == (
        'device,device=ev-a1b2c3d4e5f6,site=sjz-yuhua online=1i,boot=17i,fw="1.0.0" 5000000'
    )
    will = device.state(DEVICE, b'{"v":1,"online":false}', 6000000)
    assert will is not None
    assert will.point() == "device,device=ev-a1b2c3d4e5f6,site=sjz-yuhua online=0i 6000000"
    troubled = b'{"v":1,"online":true,"boot":3,"dropped":2,"requeued":1}'
    counted = device.state(DEVICE, troubled, 1)
    assert counted is not None
    assert counted.point().endswith("online=1i,boot=3i,dropped=2i,requeued=1i 1")
    updated = b'{"v":1,"online":true,"fw":"0.5.0","update":{"sha256":"ab","result":"ok"}}'
    after_update = device.state(DEVICE, updated, 2)
    assert after_update is not None and after_update.point().endswith('update="ok" 2')
    odd = b'{"v":1,"online":true,"update":{"result":"done"}}'  # not a result: left out
    assert "update" not in device.state(DEVICE, odd, 3).point()  # type: ignore[union-attr]
    assert device.state(DEVICE, b"", 7) is None  # a cleared retained message
    with pytest.raises(Rejected):
        device.state(DEVICE, b'{"v":1,"online":"yes"}', 8)
