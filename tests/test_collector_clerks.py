"""The clerks' names from the logins (retained `config`): `clerk` points, written when a name is
news to the collector; a config a terminal would ignore counted and logged, never dead-lettered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from structlog.testing import capture_logs

from collector import clerk
from collector.batch import Checker, Delivery, Point
from collector.checks import Rejected
from collector.deadletter import DeadLetters
from collector.influx import InfluxHttp
from collector.known import KnownDevices
from collector.metrics import Metrics
from collector.spool import Spool
from collector.suspect import SuspectJudge
from devstack import CollectorProcess, InfluxServer, collector_env
from firmware import contract
from fwtools.unix_port import firmware_module
from tests.hall import COLLECTOR, SITE, TOOLS, Hall, Peer
from tests.samples import RATING_EXAMPLE
from tests.servers import wait_for

ROOT = contract.ROOT
LOGIN = {"v": 1, "counter": "03", "staff": "E1023", "staff_name": "张敏"}


def config(site: str = SITE, device: str = "t01", **changes: object) -> Delivery:
    topic = contract.topic(ROOT, site, device, "config")
    payload = json.dumps({**LOGIN, **changes}, ensure_ascii=False).encode()
    return Delivery(topic, payload, 1, 1, False, 1, time.time_ns(), True)


def checker(tmp_path: Path) -> tuple[Checker, Metrics]:
    metrics = Metrics()
    dead = DeadLetters(tmp_path / "deadletter.jsonl", metrics.rejected)
    return Checker(ROOT, SuspectJudge(), dead, metrics), metrics


def test_a_login_becomes_a_clerk_point_at_receipt_time():
    found = clerk.login("ha01", json.dumps(LOGIN, ensure_ascii=False).encode())
    assert found == clerk.Login("ha01", "E1023", "张敏")
    assert found.point(1795347568123456789) == (
        'clerk,site=ha01,staff=E1023 name="张敏" 1795347568123456789'
    )
    assert clerk.login("ha01", b'{"staff":"E1","staff_name":"Li"}') is not None  # v optional


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # a retained config cleared
        b'{"v":1,"staff":null,"staff_name":null}',  # nobody logged in
        b'{"v":1,"staff":"E1"}',  # no name
        b'{"v":1,"staff":"E1","staff_name":null}',
        b'{"v":1,"staff":"E1","staff_name":"  "}',
        b'{"v":1,"staff_name":"Li"}',  # no staff number
        b'{"v":1,"window_s":20}',
    ],
)
def test_a_config_naming_no_clerk_gives_nothing(payload):
    assert clerk.login("ha01", payload) is None


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"{broken", "malformed_json"),
        (b"[1]", "bad_config"),
        (b'{"v":2,"staff":"E1","staff_name":"Li"}', "bad_config"),
        (b'{"v":1,"staff":"E 1","staff_name":"Li"}', "bad_config"),  # the contract's staff rule
        (b'{"v":1,"staff":7,"staff_name":"Li"}', "bad_config"),
        (b'{"v":1,"staff":"E1","staff_name":"' + b"x" * 33 + b'"}', "bad_config"),
        (b'{"v":1,"staff":"E1","staff_name":["Li"]}', "bad_config"),
        (b'{"v":1,"staff":"E1","staff_name":"Li","window_s":1}', "bad_config"),  # ignored whole
        (b'{"v":1,"staff_name":"' + b"x" * 4096 + b'"}', "oversize"),
        # a name no export could show: a control character, C0 or C1
        (b'{"v":1,"staff":"E1","staff_name":"Zhang\\u000bMin"}', "bad_config"),
        (b'{"v":1,"staff":"E1","staff_name":"Zhang\\u0085Min"}', "bad_config"),
        (b'{"v":1,"staff":"E1","staff_name":"\\tLi"}', "bad_config"),
    ],
)
def test_a_config_a_terminal_would_ignore_is_rejected(payload, kind):
    with pytest.raises(Rejected) as rejected:
        clerk.login("ha01", payload)
    assert rejected.value.kind == kind and str(rejected.value)


def test_the_terminals_own_check_of_a_config_decides(monkeypatch):
    """Which configs a terminal ignores is firmware/config.py's rule, run as it is, not a
    copy: a change to it is the collector's at once."""
    config_fw = firmware_module("config")
    assert clerk.config_fw is config_fw
    calls = []

    def changes(message):
        calls.append(message)
        raise config_fw.ConfigError("refused by the firmware")

    monkeypatch.setattr(config_fw, "changes", changes)
    with pytest.raises(Rejected, match="refused by the firmware"):
        clerk.login("ha01", json.dumps(LOGIN).encode())
    assert calls == [LOGIN]


def test_a_config_longer_than_a_terminal_reads_names_nobody():
    """A terminal lets a PUBLISH go unread when its remaining length (topic, packet id,
    payload) is over contract.DEVICE_READ_BYTES: so does the collector, to the byte."""
    topic = contract.topic(ROOT, SITE, "t01", "config")
    body = json.dumps(LOGIN, ensure_ascii=False).encode()
    room = contract.DEVICE_READ_BYTES - (2 + len(topic) + 2)  # the payload a terminal reads
    fits = body[:-1] + b" " * (room - len(body)) + b"}"  # padded with JSON's own spaces
    assert len(fits) == room
    assert clerk.packet_bytes(topic, fits, 1) == contract.DEVICE_READ_BYTES
    assert clerk.login(SITE, fits, clerk.packet_bytes(topic, fits, 1)) is not None
    over = fits[:-1] + b" }"
    with pytest.raises(Rejected) as rejected:
        clerk.login(SITE, over, clerk.packet_bytes(topic, over, 1))
    assert rejected.value.kind == "oversize"
    assert clerk.login(SITE, over, clerk.packet_bytes(topic, over, 0)) is not None  # QoS 0: no id


def test_a_name_is_written_when_it_is_news_to_the_collector(tmp_path: Path):
    check, metrics = checker(tmp_path)
    first = check.check(config())
    assert first.ack is None and first.point is not None
    assert first.point.line is not None and first.point.line.startswith("clerk,site=ha01,")
    assert check.check(config()).point is None  # the same login again: a reconnect's retained
    assert check.check(config(device="t02")).point is None  # at another counter of the hall
    assert check.check(config(staff=None, staff_name=None)).point is None  # logged out
    assert check.check(config()).point is None  # and in again
    assert check.check(config(staff_name="张敏敏")).point is not None  # the name changed
    assert check.check(config(site="ha02")).point is not None  # another hall's
    assert check.check(config(staff_name="张敏")).point is not None  # back as it was
    assert metrics.rejected_total() == {}


def test_a_bad_config_is_counted_and_logged_never_dead_lettered(tmp_path: Path):
    check, metrics = checker(tmp_path)
    bad = config(staff="E 1023")
    topic = contract.topic(ROOT, "HA01", "t01", "config")  # a site name the contract refuses
    with capture_logs() as logged:
        assert check.check(bad) == (None, None)
        assert check.check(bad._replace(topic=topic, payload=config().payload)) == (None, None)
        assert check.check(bad._replace(payload=b"\xff")) == (None, None)
    assert [(e["event"], e["log_level"], e["kind"]) for e in logged] == [
        ("config_ignored", "warning", "bad_config"),
        ("config_ignored", "warning", "bad_topic"),
        ("config_ignored", "warning", "malformed_json"),
    ]
    assert all(e["reason"] for e in logged)
    assert metrics.rejected_total() == {"config": 3}
    assert check.dead.flush() and check.dead.path.read_text() == ""
    assert check.check(config()).point is not None  # and the next login is taken


def test_a_config_a_terminal_would_not_read_or_off_the_roster_names_nobody(tmp_path: Path):
    """As ratings are: a terminal not on the roster (when one is set) names nobody; nor does a
    config too long for a terminal to read, nor a name with a control character. Each is
    counted and logged as an ignored config."""
    roster = tmp_path / "devices.txt"
    roster.write_text(f"{SITE}/t01\n")
    metrics = Metrics()
    dead = DeadLetters(tmp_path / "deadletter.jsonl", metrics.rejected)
    check = Checker(ROOT, SuspectJudge(), dead, metrics, KnownDevices(roster))
    padded = {**LOGIN, "staff_name": "张敏", "pad": " " * contract.DEVICE_READ_BYTES}
    long = json.dumps(padded, ensure_ascii=False).encode()
    with capture_logs() as logged:
        assert check.check(config(device="t09")) == (None, None)
        assert check.check(config()._replace(payload=long)) == (None, None)
        assert check.check(config(staff_name="Zhang\x0bMin")) == (None, None)
    assert [e["kind"] for e in logged] == ["unknown_device", "oversize", "bad_config"]
    assert metrics.rejected_total() == {"config": 3}
    assert check.dead.flush() and check.dead.path.read_text() == ""
    assert check.check(config()).point is not None  # the roster's terminal is heard


def test_a_clerk_point_waits_in_the_spool_as_its_line(tmp_path: Path):
    """Stored as a device point is: while InfluxDB is down, its line waits in the spool."""
    check, _ = checker(tmp_path)
    point = check.check(config()).point
    assert point is not None
    spool = Spool(tmp_path / "spool", 1 << 20)
    assert spool.append([point])
    oldest = spool.oldest()
    assert oldest is not None
    [back] = oldest[1]
    assert isinstance(back, Point) and back.line == point.line and back.judged is None


def metric(collector: CollectorProcess, name: str) -> float:
    text = requests.get(f"http://{collector.http_address()}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def settled(collector: CollectorProcess, configs: int) -> None:
    """Wait until the collector has taken that many logins and stored what it took."""
    taken = 'svc_messages_received_total{kind="config"}'
    assert wait_for(lambda: metric(collector, taken), lambda n: n >= configs) == configs
    assert wait_for(lambda: metric(collector, "svc_messages_pending"), lambda n: n == 0) == 0


def test_a_collector_learns_the_logins_on_the_hall_broker(
    hall: Hall, influxdb: InfluxServer, database: str, tmp_path: Path
):
    """A login a tools account set before the collector started is one `clerk` point; the same
    login again writes none, a changed name one more; the ACL lets the collector read them."""
    hall.add_device(SITE, "t01")
    hall.add_service(TOOLS, "tools")
    service = hall.add_service(COLLECTOR, "collector")
    tools = Peer(hall, TOOLS)
    assert tools.connect()
    login = json.dumps(LOGIN, ensure_ascii=False).encode()
    topic = contract.topic(ROOT, SITE, "t01", "config")
    tools.publish(topic, login, retain=True)
    env = collector_env(
        ROOT, database, COLLECTOR, service, batch_linger_ms="50", http="127.0.0.1:0"
    )
    collector = CollectorProcess(hall.broker, influxdb, tmp_path / "collector", env)
    collector.start()
    influx = InfluxHttp(influxdb.url, database)
    query = 'SELECT "name", "site", "staff" FROM "clerk"'
    try:
        found = wait_for(lambda: influx.query(query))
        assert [(f["site"], f["staff"], f["name"]) for f in found] == [(SITE, "E1023", "张敏")]
        tools.publish(topic, login, retain=True)
        settled(collector, 2)
        assert len(influx.query(query)) == 1
        renamed = json.dumps({**LOGIN, "staff_name": "张敏敏"}, ensure_ascii=False).encode()
        tools.publish(topic, renamed, retain=True)
        found = wait_for(lambda: influx.query(query), lambda rows: len(rows) >= 2)
        assert [f["name"] for f in found] == ["张敏", "张敏敏"]
        assert metric(collector, 'svc_points_stored_total{measurement="clerk"}') == 2
    finally:
        assert collector.stop() == 0, collector.log()[-2000:]
        tools.close()
    latest = influx.query('SELECT last("name") AS "name" FROM "clerk" GROUP BY "staff"')
    assert [(f["staff"], f["name"]) for f in latest] == [("E1023", "张敏敏")]


def test_a_malformed_config_is_counted_and_ratings_go_on(
    collector, publisher, influxdb, database, topic_root
):
    topic = contract.topic(topic_root, "sjz-yuhua", "ev-1", "config")
    long = json.dumps({**LOGIN, "staff_name": "Li", "pad": " " * contract.DEVICE_READ_BYTES})
    control = json.dumps({**LOGIN, "staff_name": '=HYPERLINK("x")\x0b'})
    for payload in (
        b"{broken",
        b'{"v":1,"staff":"E 1","staff_name":"Li"}',
        long.encode(),  # a terminal would not read it
        control.encode(),  # no export could show it
    ):
        publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    rating = contract.topic(topic_root, "sjz-yuhua", "ev-1", "rating")
    publisher.publish(rating, json.dumps(RATING_EXAMPLE).encode(), qos=1).wait_for_publish(5)
    assert wait_for(lambda: influxdb.query("SELECT * FROM rating", database))
    settled(collector, 4)
    assert metric(collector, 'svc_messages_rejected_total{reason="config"}') == 4
    assert collector.log().count('"event": "config_ignored"') == 4
    assert (collector.state_dir / "deadletter.jsonl").read_text() == ""
    assert influxdb.query('SELECT * FROM "clerk"', database) == []
    second = {**RATING_EXAMPLE, "seq": 1043, "ts": RATING_EXAMPLE["ts"] + 5000}
    publisher.publish(rating, json.dumps(second).encode(), qos=1).wait_for_publish(5)
    rows = wait_for(
        lambda: influxdb.query("SELECT * FROM rating", database), lambda rows: len(rows) == 2
    )
    assert [r["seq"] for r in rows] == [1042, 1043]
