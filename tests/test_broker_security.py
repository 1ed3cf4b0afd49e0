"""The hall's broker as svc-broker sets it up, against the real Mosquitto: nobody gets in
without an account, nothing but TLS is heard, and each terminal speaks only for itself."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from broker import acl, credentials
from broker.folder import BrokerSetupError, init, load
from collector.influx import InfluxHttp
from devstack import CollectorProcess, InfluxServer
from firmware import contract
from tests.hall import COLLECTOR, SITE, TOOLS, Hall, Peer
from tests.samples import RATING_EXAMPLE
from tests.servers import wait_for

ROOT = contract.ROOT


def topic(device: str, kind: str, site: str = SITE) -> str:
    return contract.topic(ROOT, site, device, kind)


def rating(seq: int) -> bytes:
    return json.dumps({**RATING_EXAMPLE, "seq": seq, "ts": int(time.time() * 1000)}).encode()


def logged_in(hall: Hall, user: str, **kwargs: object) -> Peer:
    peer = Peer(hall, user, **kwargs)  # type: ignore[arg-type]
    assert peer.connect(), f"{user} refused: {peer.refusal}"
    return peer


def quiet(seconds: float = 1.0) -> None:
    """Time for a message the broker would deliver to arrive: showing that none does."""
    time.sleep(seconds)


def test_nobody_gets_in_without_an_account_or_with_a_wrong_password(hall: Hall):
    hall.add_device(SITE, "t01")
    anonymous = Peer(hall, None)
    assert not anonymous.connect()
    assert anonymous.refusal is not None and "authori" in anonymous.refusal.lower()
    wrong = Peer(hall, f"{SITE}/t01", "not-the-password")
    assert not wrong.connect()
    assert wrong.refusal is not None
    unknown = Peer(hall, f"{SITE}/t99", "made-up")
    assert not unknown.connect()
    for peer in (anonymous, wrong, unknown):
        peer.close()


def test_plain_mqtt_to_the_tls_listener_gets_no_answer(hall: Hall):
    """A CONNECT in the clear is not TLS: the broker closes the connection, no CONNACK."""
    hall.add_device(SITE, "t01")
    name, password = f"{SITE}/t01", hall.passwords[f"{SITE}/t01"]
    plain = Peer(hall, name, password, tls=False)
    assert not plain.connect(timeout_s=3)
    assert plain.refusal is None  # no CONNACK of any kind came back
    plain.close()
    with socket.create_connection(("127.0.0.1", hall.broker.port), timeout=5) as sock:
        connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])
        sock.sendall(connect)
        try:
            answer = sock.recv(16)
        except ConnectionResetError:  # as likely as a close: either way, nothing but TLS
            answer = b""
    assert not answer.startswith(b"\x20\x02")


def test_the_broker_is_checked_by_its_ca_and_name(hall: Hall, tmp_path: Path):
    """A client holding another CA, or reaching the broker by a name its certificate does not
    give, refuses it: the set-up's certificate is what makes the server the hall's."""
    other = init(tmp_path / "other", "127.0.0.1:1", "localhost")
    context = ssl.create_default_context(cafile=str(other.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", hall.broker.port), timeout=5) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(sock, server_hostname="localhost")
    context = ssl.create_default_context(cafile=str(hall.folder.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", hall.broker.port), timeout=5) as sock,
        pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname"),
    ):
        context.wrap_socket(sock, server_hostname="broker.elsewhere.example")


def test_a_device_reads_only_its_own_config_prompt_and_acks_and_writes_no_config(hall: Hall):
    for device in ("t01", "t02"):
        hall.add_device(SITE, device)
    hall.add_device("ha02", "t01")
    hall.add_service(TOOLS, "tools")
    hall.add_service(COLLECTOR, "collector")
    t01 = logged_in(hall, f"{SITE}/t01")
    t02 = logged_in(hall, f"{SITE}/t02")
    t01.subscribe(f"{ROOT}/#")  # subscribing is not checked; every delivery is
    t02.subscribe(topic("t02", "config"))
    tools = logged_in(hall, TOOLS)
    collector = logged_in(hall, COLLECTOR)
    # tools and the collector write what is theirs: t02 gets it, t01 none of it
    tools.publish(topic("t02", "config"), b'{"v":1,"staff":"E1"}', retain=True)
    tools.publish(topic("t02", "prompt"), b'{"v":1,"ticket":"A1"}')
    collector.publish(topic("t02", "ack"), b'{"v":1,"seqs":[1]}')
    t02.subscribe(topic("t02", "prompt"))
    t02.subscribe(topic("t02", "ack"))
    tools.publish(topic("t02", "prompt"), b'{"v":1,"ticket":"A2"}')
    collector.publish(topic("t02", "ack"), b'{"v":1,"seqs":[2]}')
    wait_for(lambda: len(t02.messages), lambda n: n >= 3)
    assert {t for t, _, _ in t02.messages} == {topic("t02", k) for k in ("config", "prompt", "ack")}
    quiet()
    assert t01.messages == []
    # a device writes no config, its own nor another's, here or at another site
    for target in (topic("t01", "config"), topic("t02", "config"), topic("t01", "config", "ha02")):
        t01.publish(target, b'{"v":1,"staff":"FORGED"}', retain=True)
    fresh = logged_in(hall, "ha02/t01")
    fresh.subscribe(topic("t01", "config", "ha02"))
    second = logged_in(hall, f"{SITE}/t02", client_id="any")  # the retained config as it is now
    quiet()
    assert fresh.messages == []
    assert t01.messages == []  # nor its own: it reads its own config, and got none
    assert [p for t, p, _ in t02.messages if t.endswith("config")] == [b'{"v":1,"staff":"E1"}']
    for peer in (t01, t02, tools, collector, fresh, second):
        peer.close()


def test_a_collector_reads_every_login_and_writes_no_config(hall: Hall):
    """The collector learns the clerks' names from the retained logins, every terminal's and
    those set before it connected too; it may not set a terminal's config."""
    hall.add_device(SITE, "t01")
    hall.add_service(TOOLS, "tools")
    hall.add_service(COLLECTOR, "collector")
    tools = logged_in(hall, TOOLS)
    login = '{"v":1,"staff":"E1","staff_name":"张敏"}'.encode()
    tools.publish(topic("t01", "config"), login, retain=True)
    tools.publish(topic("t09", "config", "ha02"), b'{"v":1,"staff":null}', retain=True)
    collector = logged_in(hall, COLLECTOR)
    collector.subscribe(f"{ROOT}/+/+/config")
    wait_for(lambda: len(collector.messages), lambda n: n >= 2)
    assert sorted(collector.messages) == [
        (topic("t01", "config"), login, True),
        (topic("t09", "config", "ha02"), b'{"v":1,"staff":null}', True),
    ]
    collector.publish(topic("t01", "config"), b'{"v":1,"staff":"FORGED"}', retain=True)
    t01 = logged_in(hall, f"{SITE}/t01")
    t01.subscribe(topic("t01", "config"))
    wait_for(lambda: t01.messages)
    quiet()
    assert t01.messages == [(topic("t01", "config"), login, True)]
    for peer in (tools, collector, t01):
        peer.close()


def test_tools_read_a_terminals_state_and_none_of_its_ratings_or_telemetry(hall: Hall):
    """A login is read back from the terminal's retained state (its counter and staff), as
    the install guide does with mosquitto_sub; a tools account hears nothing else a terminal
    publishes."""
    hall.add_device(SITE, "t01")
    hall.add_service(TOOLS, "tools")
    t01 = logged_in(hall, f"{SITE}/t01")
    state = b'{"v":1,"online":true,"fw":"0.4.0","boot":0,"counter":"03","staff":"E1023"}'
    t01.publish(topic("t01", "state"), state, retain=True)
    tools = logged_in(hall, TOOLS)
    tools.subscribe(f"{ROOT}/#")
    wait_for(lambda: tools.messages)
    assert tools.messages == [(topic("t01", "state"), state, True)]
    t01.publish(topic("t01", "rating"), rating(1))
    t01.publish(topic("t01", "telemetry"), b'{"v":1,"boot":0,"uptime_s":5}')
    t01.publish(topic("t01", "telemetry"), b'{"v":1,"boot":0,"uptime_s":6}', retain=True)
    logout = b'{"v":1,"online":true,"fw":"0.4.0","boot":0,"counter":"03","staff":null}'
    t01.publish(topic("t01", "state"), logout, retain=True)
    wait_for(lambda: len(tools.messages), lambda n: n >= 2)
    quiet()
    assert tools.messages == [
        (topic("t01", "state"), state, True),
        (topic("t01", "state"), logout, False),  # live, as it was published
    ]
    tools.close()
    again = logged_in(hall, TOOLS)
    again.subscribe(topic("t01", "#"))
    wait_for(lambda: again.messages)
    quiet()
    assert again.messages == [(topic("t01", "state"), logout, True)]  # the retained telemetry not
    for peer in (t01, again):
        peer.close()


def test_the_console_sets_logins_and_prompts_and_reads_who_sits_where_and_the_alerts(hall: Hall):
    """The hall console's account: it writes `config` and `prompt` as tools do, reads back
    every terminal's retained config (whoever set it) and state, and the hall's alerts; it
    never hears a rating or telemetry, and never speaks as a terminal or a collector."""
    hall.add_device(SITE, "t01")
    hall.add_service(TOOLS, "tools")
    hall.add_service("console-1", "console")
    hall.add_service(COLLECTOR, "collector")
    tools = logged_in(hall, TOOLS)
    login = b'{"v":1,"counter":"03","staff":"E1023","staff_name":"\xe5\xbc\xa0"}'
    tools.publish(topic("t01", "config"), login, retain=True)  # set by another tool
    tools.subscribe(f"{ROOT}/+/alert")
    t01 = logged_in(hall, f"{SITE}/t01")
    state = b'{"v":1,"online":true,"fw":"0.4.0","boot":0,"counter":"03","staff":"E1023"}'
    t01.publish(topic("t01", "state"), state, retain=True)
    t01.subscribe(topic("t01", "#"))
    console = logged_in(hall, "console-1")
    console.subscribe(f"{ROOT}/#")
    wait_for(lambda: len(console.messages), lambda n: n >= 2)
    assert sorted(console.messages) == sorted(
        [(topic("t01", "config"), login, True), (topic("t01", "state"), state, True)]
    )
    t01.publish(topic("t01", "rating"), rating(1))
    t01.publish(topic("t01", "telemetry"), b'{"v":1,"boot":0,"uptime_s":5}')
    collector = logged_in(hall, COLLECTOR)
    alert = b'{"v":1,"type":"poor_rating","device":"t01","ts":1}'
    collector.publish(f"{ROOT}/{SITE}/alert", alert)
    prompt = b'{"v":1,"ticket":"A1"}'
    console.publish(topic("t01", "prompt"), prompt)
    for forged in ("state", "rating", "ack"):  # never as a terminal or a collector
        console.publish(topic("t01", forged), b'{"v":1}')
    console.publish(f"{ROOT}/{SITE}/alert", b'{"v":1,"type":"forged"}')
    wait_for(lambda: len(console.messages), lambda n: n >= 3)
    quiet()
    assert console.messages[2:] == [(f"{ROOT}/{SITE}/alert", alert, False)]
    assert tools.messages == []  # an alert names a clerk's poor rating: not for tools
    assert (topic("t01", "prompt"), prompt, False) in t01.messages
    assert not any(m[0].endswith("/ack") for m in t01.messages)
    for peer in (tools, t01, console, collector):
        peer.close()


def test_a_device_cannot_take_over_another_devices_client_id(hall: Hall):
    for device in ("t01", "t02"):
        hall.add_device(SITE, device)
    hall.add_service(TOOLS, "tools")
    victim = logged_in(hall, f"{SITE}/t02", client_id=f"{SITE}/t02")
    victim.subscribe(topic("t02", "prompt"))
    thief = logged_in(hall, f"{SITE}/t01", client_id=f"{SITE}/t02")
    thief2 = logged_in(hall, f"{SITE}/t01", client_id="t02")
    quiet()
    assert not victim.dropped.is_set()
    logged_in(hall, TOOLS).publish(topic("t02", "prompt"), b'{"v":1,"ticket":"A9"}')
    wait_for(lambda: victim.messages)
    assert [t for t, _, _ in victim.messages] == [topic("t02", "prompt")]
    assert thief.messages == [] and thief2.messages == []
    # two connections under one account: the second takes the first's place (the broker's
    # client id is the username), so each collector instance needs an account of its own
    assert thief.dropped.wait(5)
    for peer in (victim, thief, thief2):
        peer.close()


def test_only_tools_offer_an_update_and_only_tools_hear_a_terminals_fetch(hall: Hall):
    """An image offered, or a chunk sent, from a device's account (its own topic or another's)
    never reaches a terminal; the tools account's offer and chunks do, and only tools read
    what a terminal asks for (the collector does not)."""
    for device in ("t01", "t02"):
        hall.add_device(SITE, device)
    hall.add_service(TOOLS, "tools")
    hall.add_service(COLLECTOR, "collector")
    victim = logged_in(hall, f"{SITE}/t02")
    for kind in ("update", "chunk"):
        victim.subscribe(topic("t02", kind))
    tools = logged_in(hall, TOOLS)
    tools.subscribe(topic("+", "fetch"))
    collector = logged_in(hall, COLLECTOR)
    collector.subscribe(f"{ROOT}/#")
    forger = logged_in(hall, f"{SITE}/t01")
    for kind in ("update", "chunk"):
        for target in ("t01", "t02"):
            forger.publish(topic(target, kind), b'{"v":1,"kind":"image"}', retain=kind == "update")
    victim.publish(topic("t02", "fetch"), b'{"v":1}')
    quiet()
    assert victim.messages == []
    assert [t for t, _, _ in tools.messages] == [topic("t02", "fetch")]
    assert not any(t.endswith("/fetch") for t, _, _ in collector.messages)
    tools.publish(topic("t02", "update"), b'{"v":1}', retain=True)
    tools.publish(topic("t02", "chunk"), b"0 x\n")
    wait_for(lambda: len(victim.messages) == 2)
    for peer in (victim, tools, collector, forger):
        peer.close()


def test_a_password_rotation_keeps_the_present_one_and_moves_to_the_other_account(hall: Hall):
    """`add-device --replace` puts the new password on the terminal's other account, with the
    same rights as its first (its own topics, no other's); the account it uses keeps its
    password until the next rotation, which moves it back."""
    first = json.loads(hall.add_device(SITE, "t01").read_text())
    hall.add_device(SITE, "t02")
    hall.add_service(TOOLS, "tools")
    hall.add_service(COLLECTOR, "collector")
    second = json.loads(rotated(hall, "t01").read_text())
    assert second["broker_user"] == f"{SITE}/t01/2" != first["broker_user"]
    old = logged_in(hall, first["broker_user"], password=first["broker_password"])
    new = logged_in(hall, second["broker_user"], password=second["broker_password"])
    new.subscribe(topic("t01", "config"))
    new.subscribe(topic("t02", "config"))
    tools = logged_in(hall, TOOLS)
    for device in ("t01", "t02"):
        tools.publish(topic(device, "config"), b'{"v":1}')
    listener = logged_in(hall, COLLECTOR)
    listener.subscribe(topic("+", "rating"))
    new.publish(topic("t01", "rating"), b"{}")
    new.publish(topic("t02", "rating"), b"{}")  # another's: dropped
    quiet()
    assert [t for t, _, _ in new.messages] == [topic("t01", "config")]
    assert [t for t, _, _ in listener.messages] == [topic("t01", "rating")]
    for peer in (old, new, tools, listener):
        peer.close()
    # rotated again before the terminal took the first: the same new account changes, the
    # one it may still use does not
    again = json.loads(rotated(hall, "t01").read_text())
    assert again["broker_user"] == f"{SITE}/t01/2"
    assert logs_in(hall, first["broker_user"], first["broker_password"])
    assert not logs_in(hall, second["broker_user"], second["broker_password"])
    assert logs_in(hall, again["broker_user"], again["broker_password"])
    # the terminal took it: the old password revoked; the next rotation goes back
    hall.folder.retire(f"{SITE}/t01")
    hall.folder.reload()
    assert not logs_in(hall, first["broker_user"], first["broker_password"])
    assert logs_in(hall, again["broker_user"], again["broker_password"])
    third = json.loads(rotated(hall, "t01").read_text())
    assert third["broker_user"] == f"{SITE}/t01"
    assert logs_in(hall, third["broker_user"], third["broker_password"])
    assert logs_in(hall, again["broker_user"], again["broker_password"])
    assert f"{SITE}/t01" in load(hall.folder.path).accounts


def logs_in(hall: Hall, user: str, password: str) -> bool:
    peer = Peer(hall, user, password)
    try:
        return peer.connect(3)
    finally:
        peer.close()


def rotated(hall: Hall, device: str) -> Path:
    out = hall.files / f"{SITE}-{device}-rotated.json"
    credentials.add_device(hall.folder, SITE, device, out, replace=True)
    hall.folder.reload()
    return out


def test_accounts_added_or_removed_on_a_running_broker_count_at_once(hall: Hall):
    """As svc-broker does it: the files rewritten, the running broker told (SIGHUP)."""
    name = f"{SITE}/t07"

    def logs_in() -> bool:
        peer = Peer(hall, name, hall.passwords[name])
        try:
            return peer.connect(3)
        finally:
            peer.close()

    assert hall.folder.reload() == 1  # the test's broker, found by its configuration file
    hall.add_device(SITE, "t07")
    assert wait_for(logs_in, timeout_s=10)
    removed = subprocess.run(
        [sys.executable, "-m", "broker.cli", "remove", str(hall.folder.path), name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert "1 running broker(s) reloaded" in removed.stdout
    assert wait_for(logs_in, lambda ok: not ok, timeout_s=10) is False
    assert name not in (hall.folder.path / "devices.txt").read_text()


def test_only_the_listener_the_set_up_asked_for_is_open(hall: Hall):
    """Every TCP socket the broker listens on, from /proc: one, on the set-up's address (a
    listener option placed before its listener line would open 0.0.0.0:1883 as well)."""
    [pid] = hall.folder.broker_pids()
    sockets = {
        os_link.split("[")[1].rstrip("]")
        for os_link in (str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir())
        if os_link.startswith("socket:")
    }
    listening = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in sockets:  # 0A: LISTEN
                address, port = fields[1].split(":")
                listening.append((table, address, int(port, 16)))
    assert listening == [("tcp", "0100007F", hall.broker.port)]  # 127.0.0.1, little-endian


def test_no_message_larger_than_the_contract_allows_reaches_a_terminal(hall: Hall):
    """The contract's largest message passes; a 60 KB retained config, more than a terminal's
    heap holds, is dropped, its sender disconnected, and the retained config left as it was."""
    hall.add_device(SITE, "t01")
    hall.add_service(TOOLS, "tools")
    t01 = logged_in(hall, f"{SITE}/t01")
    t01.subscribe(topic("t01", "config"))
    tools = logged_in(hall, TOOLS)
    largest = b'{"v":1,"staff_name":"' + b"x" * (contract.MAX_PAYLOAD_BYTES - 23) + b'"}'
    assert len(largest) == contract.MAX_PAYLOAD_BYTES
    tools.publish(topic("t01", "config"), largest, retain=True)
    wait_for(lambda: t01.messages)
    tools.client.publish(topic("t01", "config"), b"x" * 60_000, qos=1, retain=True)
    assert tools.dropped.wait(5)
    quiet()
    fresh = logged_in(hall, f"{SITE}/t01", client_id="any")  # the retained config as it is now
    fresh.subscribe(topic("t01", "config"))
    wait_for(lambda: fresh.messages)
    assert [p for _, p, _ in t01.messages + fresh.messages] == [largest, largest]
    for peer in (t01, tools, fresh):
        peer.close()


def test_the_acl_follows_the_contracts_publishers():
    text = acl.render("r/v1", {"c1": "collector", "tl": "tools"})
    for kind, (_q, _r, publisher) in contract.DEVICE_TOPICS.items():
        mine = "write" if publisher == "device" else "read"
        assert f"pattern {mine} r/v1/%u/{kind}\n" in text
    collector_block = text.split("user c1\n")[1].split("\n\n")[0].splitlines()
    assert collector_block == [
        "topic read r/v1/+/+/rating",
        "topic read r/v1/+/+/state",
        "topic read r/v1/+/+/telemetry",
        "topic read r/v1/+/+/config",  # the logins: the clerks' names
        "topic write r/v1/+/+/ack",
        "topic write r/v1/+/alert",
    ]  # not a terminal's fetch of an update
    console = acl.render("r/v1", {"k1": "console"}).split("user k1\n")[1].strip().splitlines()
    assert console == [
        "topic read r/v1/+/+/state",
        "topic readwrite r/v1/+/+/config",  # sets logins, and reads who sits where now
        "topic write r/v1/+/+/prompt",
        "topic write r/v1/+/+/update",  # may offer an image, as tools do
        "topic write r/v1/+/+/chunk",
        "topic read r/v1/+/alert",
    ]
    tools_block = text.split("user tl\n")[1].strip().splitlines()
    assert tools_block == [
        "topic read r/v1/+/+/state",  # a login read back, the image a terminal runs
        "topic write r/v1/+/+/config",
        "topic write r/v1/+/+/prompt",  # no alert: it names a clerk's poor rating
        "topic write r/v1/+/+/update",  # an image offered (svc-firmware publish)
        "topic read r/v1/+/+/fetch",  # and served to the terminal that asks
        "topic write r/v1/+/+/chunk",
    ]


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("ha01", "device"),
        ("ha01/t+", "device"),
        ("a/b/c", "device"),
        ("c/1", "collector"),
        ("c1", "admin"),
        ("#", "tools"),
    ],
)
def test_names_that_would_widen_the_acl_are_refused(hall: Hall, name: str, role: str):
    with pytest.raises(BrokerSetupError):
        hall.folder.add_account(name, role)
    assert name not in load(hall.folder.path).accounts


def test_a_device_cannot_publish_as_another_and_a_retained_rating_is_not_stored(
    hall: Hall, hall_collector: CollectorProcess, influxdb: InfluxServer, database: str, tmp_path
):
    """With the collector on its own account over TLS: forged ratings never reach it, a
    retained one is dead-lettered, and no password shows in any log or dead letter."""
    for device in ("t01", "t02"):
        hall.add_device(SITE, device)
    hall.add_device("ha02", "t01")
    collector = hall_collector
    try:
        t01 = logged_in(hall, f"{SITE}/t01")
        t01.publish(topic("t02", "rating"), rating(1))  # another device of its site
        t01.publish(topic("t01", "rating", "ha02"), rating(2))  # a device of another site
        t01.publish(f"{ROOT}/{SITE}/rating", rating(3))  # no device at all
        t01.publish(topic("t01", "rating"), rating(4), retain=True)  # its own, retained
        t01.publish(topic("t01", "rating"), rating(5))  # its own: the one to store
        influx = InfluxHttp(influxdb.url, database)
        query = 'SELECT "seq", "device", "site" FROM "rating"'
        stored = wait_for(lambda: influx.query(query), lambda rows: len(rows) >= 1)
        quiet()
        stored = influx.query(query)
        assert [(r["site"], r["device"], r["seq"]) for r in stored] == [(SITE, "t01", 5)]
        dead = [
            json.loads(line)
            for line in (tmp_path / "collector" / "deadletter.jsonl").read_text().splitlines()
        ]
        assert [(d["kind"], json.loads(d["payload"])["seq"]) for d in dead] == [("retained", 4)]
        t01.close()
        metrics = requests.get(f"http://{collector.http_address()}/metrics", timeout=5).text
        assert 'svc_messages_rejected_total{reason="retained"} 1.0' in metrics
    finally:
        collector.stop()
    logs = [
        metrics,
        collector.log(),
        hall.broker.log_path.read_text(),
        *(p.read_text() for p in (tmp_path / "collector").glob("*.jsonl")),
    ]
    for secret in hall.passwords.values():
        assert not any(secret in text for text in logs)
