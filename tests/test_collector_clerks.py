"""The clerks' names from the logins (retained `config`): `clerk` points, written when a login
published now brings a name other than the last InfluxDB holds, and for a retained copy handed
over at a subscribe only when InfluxDB holds no name at all; a config a terminal would ignore
counted and logged, never dead-lettered."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests
from structlog.testing import capture_logs

from collector import clerk
from collector.batch import Batch, Checker, Delivery, Point
from collector.checks import Rejected
from collector.deadletter import DeadLetters
from collector.influx import InfluxHttp
from collector.known import KnownDevices
from collector.metrics import Metrics
from collector.spool import Spool
from collector.storage import Storage
from collector.suspect import SuspectJudge
from devstack import CollectorProcess, InfluxServer, collector_env
from firmware import contract
from fwtools.unix_port import firmware_module
from tests.hall import COLLECTOR, SITE, TOOLS, Hall, Peer
from tests.influx_proxy import influx_proxy
from tests.samples import RATING_EXAMPLE
from tests.servers import start_collector, wait_for

ROOT = contract.ROOT
LOGIN = {"v": 1, "counter": "03", "staff": "E1023", "staff_name": "张敏"}


def config(
    site: str = SITE, device: str = "t01", *, retained: bool = False, **changes: object
) -> Delivery:
    """A login as paho hands it over: published now (retain 0), or a retained copy handed
    over again at a subscribe (retain 1)."""
    topic = contract.topic(ROOT, site, device, "config")
    payload = json.dumps({**LOGIN, **changes}, ensure_ascii=False).encode()
    return Delivery(topic, payload, 1, 1, False, 1, time.time_ns(), retained)


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


def test_a_login_is_checked_into_a_clerk_point_that_says_if_it_is_a_replay(tmp_path: Path):
    check, metrics = checker(tmp_path)
    live = check.check(config())
    assert live.ack is None and live.point is not None
    assert live.point.line is not None and live.point.line.startswith("clerk,site=ha01,")
    assert live.point.login == clerk.Login(SITE, "E1023", "张敏", replayed=False)
    replay = check.check(config(retained=True)).point
    assert replay is not None and replay.login == clerk.Login(SITE, "E1023", "张敏", True)
    assert check.check(config(staff=None, staff_name=None)).point is None  # logged out
    assert metrics.rejected_total() == {}


def storing(tmp_path: Path, influx: InfluxHttp) -> Storage:
    """The storing thread, started as the collector starts it."""
    metrics = Metrics()
    dead = DeadLetters(tmp_path / "deadletter.jsonl", metrics.rejected)
    spool = Spool(tmp_path / "spool", 1 << 20)
    store = Storage(influx, spool, dead, metrics, threading.Event(), drain_batch=100)
    store.make_database(once=True)
    store.start()
    return store


def stored(store: Storage, check: Checker, *deliveries: Delivery) -> Batch:
    store.submit(check.batch(list(deliveries)))
    batch = store.done.get(timeout=15)
    assert batch.stored
    return batch


def names(influx: InfluxHttp) -> list[tuple[str, str, str]]:
    rows = influx.query('SELECT "name", "site", "staff" FROM "clerk"')
    return [(r["site"], r["staff"], r["name"]) for r in rows]


def test_a_name_is_written_when_it_is_news_to_influxdb(
    influxdb: InfluxServer, database: str, tmp_path: Path
):
    """What InfluxDB holds decides, not what this process wrote: a login published now writes
    its name when it is not the last stored for that hall and staff number; a retained copy
    handed over at a subscribe (a terminal long retired may still hold one, with a staff
    number since given to another clerk) only when none is stored at all."""
    influx = InfluxHttp(influxdb.url, database)
    influx.ensure_database()
    influx.write([clerk.Login(SITE, "E1023", "李华").point(time.time_ns() - 10**9)])
    check, _ = checker(tmp_path)
    store = storing(tmp_path, influx)
    try:
        stored(store, check, config(retained=True))  # the retired terminal's, 张敏: not news
        stored(store, check, config(device="t02", staff_name="李华", retained=True))
        assert names(influx) == [(SITE, "E1023", "李华")]
        stored(store, check, config(staff="E2", staff_name="王五"))  # a login now, new
        stored(store, check, config(staff="E2", staff_name="王五"))  # the same again
        stored(store, check, config(staff="E3", staff_name="赵六", retained=True))  # none stored
        stored(
            store,  # in one batch: the first of two replays names a clerk nobody named
            check,
            config(staff="E4", staff_name="钱七", retained=True),
            config(device="t02", staff="E4", staff_name="孙八", retained=True),
            config(staff="E3", staff_name="周九", retained=True),  # E3 has a name now
        )
        stored(store, check, config(device="t03", staff_name="李华"))  # the last one: no news
        stored(store, check, config())  # 张敏 logs in now: news
        stored(store, check, config(site="ha02"))  # in another hall
    finally:
        store.finish()
        store.join(15)
    assert names(influx)[1:] == [
        (SITE, "E2", "王五"),
        (SITE, "E3", "赵六"),
        (SITE, "E4", "钱七"),
        (SITE, "E1023", "张敏"),
        ("ha02", "E1023", "张敏"),
    ]
    restarted = storing(tmp_path, influx)  # a new process knows only what InfluxDB holds
    try:
        stored(restarted, check, config(device="t02", staff_name="李华", retained=True))
        stored(restarted, check, config(staff="E2", staff_name="王五"))
        assert len(names(influx)) == 6
        stored(restarted, check, config(device="t02", staff_name="李华"))  # back: a login now
    finally:
        restarted.finish()
        restarted.join(15)
    assert names(influx)[-1] == (SITE, "E1023", "李华")


def test_a_look_up_influxdb_refuses_writes_a_login_now_and_no_replay(
    influxdb: InfluxServer, database: str, tmp_path: Path
):
    """Should InfluxDB refuse the look-up itself, a name stays unknown: a login published now
    is still written (it is news whatever is stored), a replay is not, nor is the batch held
    up; the next look-up InfluxDB answers decides again."""
    InfluxHttp(influxdb.url, database).ensure_database()
    check, _ = checker(tmp_path)
    with influx_proxy(influxdb.url) as proxy:
        store = storing(tmp_path, InfluxHttp(proxy.url, database))
        proxy.fault = lambda method, path: (
            (400, b'{"error":"refused"}') if path == "/query" else None
        )
        try:
            with capture_logs() as logged:
                stored(store, check, config(retained=True), config(staff="E2"))
            assert [e["event"] for e in logged if e["event"].startswith("clerk")] == [
                "clerk_lookup_refused"
            ]
            assert names(InfluxHttp(influxdb.url, database)) == [(SITE, "E2", "张敏")]
            proxy.fault = lambda method, path: None
            stored(store, check, config(retained=True), config(staff="E2", retained=True))
        finally:
            store.finish()
            store.join(15)
    assert names(InfluxHttp(influxdb.url, database)) == [
        (SITE, "E2", "张敏"),
        (SITE, "E1023", "张敏"),  # no name stored: the replay names the clerk
    ]


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


def test_a_clerk_point_waits_in_the_spool_as_its_line_and_login(tmp_path: Path):
    """While InfluxDB is down, its line waits in the spool with its login, a replay or not,
    for storage to decide once InfluxDB is back."""
    check, _ = checker(tmp_path)
    points = [check.check(config(retained=replayed)).point for replayed in (False, True)]
    spool = Spool(tmp_path / "spool", 1 << 20)
    assert spool.append([p for p in points if p is not None])
    oldest = spool.oldest()
    assert oldest is not None
    for back, point in zip(oldest[1], points, strict=True):
        assert isinstance(back, Point) and point is not None
        assert back.line == point.line and back.judged is None and back.login == point.login
    assert [p.login.replayed for p in oldest[1] if p.login] == [False, True]
    odd = {"line": "clerk x=1", "login": [SITE, "E1' OR '1'='1", "张敏"], "replayed": False}
    with oldest[0].open("ab") as f:  # a staff number no config could carry: not an entry
        f.write(json.dumps(odd).encode() + b"\n")
    again = spool.oldest()
    assert again is not None and len(again[1]) == 3
    assert again[1][-1].line is None and again[1][-1].login is None  # for the dead letters


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


def retain_login(client, root: str, device: str, **login: object) -> None:
    """A tools account sets a terminal's login: its retained config."""
    topic = contract.topic(root, "sjz-yuhua", device, "config")
    body = json.dumps({**LOGIN, **login}, ensure_ascii=False).encode()
    client.publish(topic, body, qos=1, retain=True).wait_for_publish(5)


def test_a_restart_writes_no_retained_login_again(
    mosquitto, influxdb, publisher, tmp_path, topic_root, database
):
    """T1 was retired without a logout and still holds 张敏 under E1, a staff number since
    given to 李华, who logged in on T2. Every start of the collector is handed both retained
    logins again: neither is news, and 李华 stays the name of E1."""
    collector = start_collector(
        mosquitto, influxdb, tmp_path / "collector", topic_root, database, http="127.0.0.1:0"
    )
    influx = InfluxHttp(influxdb.url, database)
    query = 'SELECT "name", "staff" FROM "clerk"'
    try:
        retain_login(publisher, topic_root, "t2", staff="E7", staff_name="王五")  # T2's first
        retain_login(publisher, topic_root, "t1", staff="E1", staff_name="张敏")
        retain_login(publisher, topic_root, "t2", staff="E1", staff_name="李华")
        found = wait_for(lambda: influx.query(query), lambda rows: len(rows) >= 3)
        assert [(r["staff"], r["name"]) for r in found] == [
            ("E7", "王五"),
            ("E1", "张敏"),
            ("E1", "李华"),
        ]
    finally:
        assert collector.stop() == 0, collector.log()[-2000:]
    for _ in range(2):
        collector.start()
        try:
            settled(collector, 2)  # both retained logins handed over again, and stored
            assert metric(collector, 'svc_points_stored_total{measurement="clerk"}') == 0
        finally:
            assert collector.stop() == 0, collector.log()[-2000:]
    assert len(influx.query(query)) == 3
    latest = influx.query('SELECT last("name") AS "name" FROM "clerk" GROUP BY "staff"')
    assert {r["staff"]: r["name"] for r in latest} == {"E1": "李华", "E7": "王五"}


def test_logins_handed_over_while_influxdb_is_down_are_decided_once_it_is_back(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database
):
    """A collector started while InfluxDB is down takes the retained logins and the ratings
    into its spool, losing nothing; once InfluxDB is back, each replay is decided against what
    it holds: E1's stale login writes nothing, E3's (no name stored) its name."""
    influx = InfluxHttp(own_influx.url, database)
    influx.ensure_database()
    influx.write([clerk.Login("sjz-yuhua", "E1", "李华").point(time.time_ns() - 10**9)])
    retain_login(publisher, topic_root, "t1", staff="E1", staff_name="张敏")
    retain_login(publisher, topic_root, "t3", staff="E3", staff_name="赵六")
    own_influx.stop()
    collector = start_collector(
        mosquitto, own_influx, tmp_path / "collector", topic_root, database, start=False
    )
    collector.start()
    try:
        rating = contract.topic(topic_root, "sjz-yuhua", "t1", "rating")
        publisher.publish(rating, json.dumps(RATING_EXAMPLE).encode(), qos=1).wait_for_publish(5)
        assert collector.wait_logged("spooled")
        own_influx.restart()
        rows = wait_for(lambda: influx.query("SELECT seq FROM rating"))
        assert [r["seq"] for r in rows] == [RATING_EXAMPLE["seq"]]
        assert wait_for(lambda: '"spool_written"' in collector.log())
    finally:
        assert collector.stop() == 0, collector.log()[-2000:]
    rows = influx.query('SELECT "name", "staff" FROM "clerk"')
    assert [(r["staff"], r["name"]) for r in rows] == [("E1", "李华"), ("E3", "赵六")]
