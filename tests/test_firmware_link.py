"""What neither a collector nor a payload can do to the real firmware's link and queue, under
the MicroPython Unix port against the real Mosquitto: a rating never acknowledged blocks none
after it; a message larger than a 64 KB heap holds is let go, a config its flash cannot save
is used, and no payload on config, prompt or ack ends the link."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from devstack import MosquittoServer
from firmware import contract
from fwtools import image
from tests.servers import serve, start_collector
from tests.terminals import Listener, Withholding, device_topic, make_terminal, relink

HEAP = "64K"
CONFIG = {"v": 1, **contract.CONFIG_DEFAULTS, "counter": "01", "staff": "E1001"}


def rate(terminal, n):
    terminal.clerk_key()
    terminal.wait_count("opened", n)
    terminal.press(0)
    terminal.wait_for(lambda e: e["ev"] == "rated" and e["seq"] == n)


def rate_now(terminal) -> int:
    """The clerk asks, the customer presses (whatever windows came before): the seq."""
    seen = len(terminal.events)
    terminal.clerk_key()
    terminal.wait_for(lambda e: e["ev"] == "opened", after=seen)
    terminal.press(0)
    rated = terminal.wait_for(lambda e: e["ev"] == "rated" and e["score"], after=seen)
    return int(rated["seq"])


def test_a_rating_never_acknowledged_moves_to_the_tail_and_blocks_none_after_it(
    mosquitto, micropython, tmp_path, topic_root
):
    """Seq 1 is never acknowledged, 2 and 3 are, and the queue holds three ratings: a fourth
    is taken once the head has moved, and the first is kept, sent again and forgotten when the
    collector at last takes it. The resend rounds' waits (10 s, then 20 s) pass at once."""
    withheld = {1}
    peer = Withholding(mosquitto, topic_root, withheld)
    listener = Listener(mosquitto, topic_root, "listener-requeue")
    terminal = make_terminal(
        tmp_path / "t", mosquitto, topic_root, queue_bytes=100, keepalive_s=60
    )  # room for three ratings; a keepalive the waits let pass do not outlast
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected")
        for n in (1, 2, 3):
            rate(terminal, n)
        listener.wait("ack", 2)
        time.sleep(0.5)  # for the terminal to have them too
        terminal.elapse(11_000)
        terminal.wait_for(lambda e: e["ev"] == "resent" and e["seq"] == 1)
        terminal.elapse(21_000)
        moved = terminal.wait_for(lambda e: e["ev"] == "requeued")
        assert moved["seq"] == 1
        terminal.wait_acked(3)
        rate(terminal, 4)
        listener.wait("rating", 5)  # 1, 2, 3, 4 and at least one copy of 1 again
        assert not terminal.of_kind("dropped")
        state = [s for s in listener.of("state") if s.get("requeued")]
        assert state and state[-1]["requeued"] == 1 and state[-1]["online"]
        withheld.clear()  # the collector takes it at last
        relink(terminal)  # a new connection sends it again at once
        terminal.wait_acked(1, timeout_s=20)
        terminal.wait_acked(4)
    finally:
        terminal.stop()
        listener.close()
        peer.close()
    assert [e["seq"] for e in terminal.of_kind("acked")] == [2, 3, 1, 4]


@pytest.fixture(scope="module")
def rom(tmp_path_factory) -> Path:
    """The image with the Unix board, as a ROMFS image run in place: the heap holds no
    bytecode, as on a board with a ROM partition."""
    out = tmp_path_factory.mktemp("image")
    return image.write_romfs(image.build(out / "files", simulation=True), out / "terminal.romfs")


@pytest.fixture
def unlimited_broker(tmp_path) -> Iterator[MosquittoServer]:
    """A broker that passes messages of any size, as one set up otherwise than a hall's."""
    yield from serve(MosquittoServer(tmp_path / "broker", max_packet_bytes=None))


def test_a_retained_config_larger_than_its_heap_is_let_go_and_the_link_kept(
    unlimited_broker, influxdb, database, micropython, tmp_path, topic_root, rom
):
    """60 KB of retained config to a terminal in a 64 KB heap: it comes again at every
    subscribe, so reading it whole would end every connection."""
    config = device_topic(topic_root, "config")
    publisher = Listener(unlimited_broker, topic_root, "publisher-large")
    publisher.client.publish(config, b'{"v":1,"x":"' + b"x" * 60_000 + b'"}', qos=1, retain=True)
    collector = start_collector(unlimited_broker, influxdb, tmp_path / "c", topic_root, database)
    terminal = make_terminal(tmp_path / "t", unlimited_broker, topic_root, heap=HEAP, rom=rom)
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
        refused = terminal.wait_for(lambda e: e["ev"] == "too_large")
        assert refused["kind"] == "config" and refused["bytes"] > 60_000
        publisher.publish(config, {"v": 1, "staff": "E2002"}, retain=True)
        terminal.wait_for(lambda e: e["ev"] == "config")
        rate(terminal, 1)
        terminal.wait_acked(1)
        assert terminal.of_kind("connected") == [{"ev": "connected"}]  # one link all along
        assert publisher.wait("rating", 1)[0]["staff"] == "E2002"
    finally:
        terminal.stop()
        collector.stop()
        publisher.close()


def test_a_config_its_flash_cannot_save_is_used_and_saved_when_it_comes_again(
    mosquitto, micropython, tmp_path, topic_root
):
    """Its flash failing, a terminal takes its retained config all the same (the clerk logged
    in gets the ratings), keeps the link, and saves the config when it comes again."""
    config = device_topic(topic_root, "config")
    publisher = Listener(mosquitto, topic_root, "publisher-unsaved")
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected")
        terminal.flash(False)
        publisher.publish(config, {"v": 1, "staff": "E2002"}, retain=True)
        terminal.wait_for(lambda e: e["ev"] == "config_unsaved")
        terminal.flash(True)
        rate(terminal, 1)
        assert terminal.of_kind("rated")[0]["staff"] == "E2002"
        assert not terminal.of_kind("disconnected")
        relink(terminal)  # the next connection brings the retained config again
        terminal.wait_count("connected", 2)
        terminal.wait_count("config", 1)
        terminal.stop()
        terminal.settings = dict(terminal.settings, broker="mqtt://127.0.0.1:1")
        terminal.start()  # no broker: the config is the one saved
        rate_now(terminal)
        assert terminal.of_kind("rated")[0]["staff"] == "E2002"
    finally:
        terminal.stop()
        publisher.close()


def sized(units: st.SearchStrategy[bytes], limit: int) -> st.SearchStrategy[bytes]:
    """A unit repeated to any length up to `limit` bytes, without hypothesis drawing each."""
    return st.builds(
        lambda unit, n: (unit * (n // len(unit) + 1))[:n], units, st.integers(0, limit)
    )


def large_json(key: str, limit: int) -> st.SearchStrategy[bytes]:
    """JSON of up to `limit` bytes that parses into much more heap: a long list, a long string,
    deep nesting, under the kind's own key."""

    def build(n: int, item: bytes, shape: str) -> bytes:
        if shape == "deep":
            return b"[" * (n // 2) + b"]" * (n // 2)
        n -= len(b'{"v":1,"":[]}') + len(key)
        if shape == "string":
            return b'{"v":1,"%s":"%s"}' % (key.encode(), item.strip(b'"') * (n // len(item)))
        items = b",".join([item] * max(1, n // (len(item) + 1)))
        return b'{"v":1,"%s":[%s]}' % (key.encode(), items)

    items = st.sampled_from([b"0", b"7", b"-1", b"1e300", b"{}", b"[]", b'"x"', b'"\\ud800"'])
    shapes = st.sampled_from(["list", "string", "deep"])
    return st.builds(build, st.integers(20, limit), items, shapes)


def payloads(kind: str, limit: int) -> st.SearchStrategy[bytes]:
    """Any bytes, any JSON, JSON shaped for the kind, and large JSON, up to `limit` bytes."""
    text = st.text(st.characters() | st.characters(categories=["Cs"]))
    any_json = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=8,
    )
    shaped = {
        "config": st.fixed_dictionaries(
            {"v": st.sampled_from([1, 2]) | any_json},
            optional={
                key: any_json | st.just(value)
                for key, value in contract.CONFIG_DEFAULTS.items()
                if key != "staff_name"  # the marker's
            },
        ),
        "prompt": st.fixed_dictionaries({"v": st.just(1)}, optional={"ticket": any_json}),
        "ack": st.fixed_dictionaries(
            {"v": st.just(1) | any_json, "seqs": st.lists(st.integers(-1, 10) | any_json)}
        ),
    }[kind]
    key = {"config": "buttons", "prompt": "ticket", "ack": "seqs"}[kind]
    as_json = (any_json | shaped).map(lambda m: json.dumps(m).encode("utf-8", "surrogatepass"))
    raw = st.binary(max_size=64) | sized(st.binary(min_size=1, max_size=8), limit)
    return (raw | as_json | large_json(key, limit)).filter(lambda b: len(b) <= limit)


def test_no_payload_on_config_prompt_or_ack_takes_the_link_down(
    mosquitto, collector, publisher, micropython, tmp_path, topic_root, rom
):
    """Random payloads, any bytes or JSON of any size the broker passes, on the three topics a
    terminal in a 64 KB heap reads: the link never drops, and it still rates and delivers."""
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root, heap=HEAP, rom=rom)
    kinds = ("config", "prompt", "ack")
    topics = {kind: device_topic(topic_root, kind) for kind in kinds}
    # the payload's room in a packet of MAX_PACKET_BYTES: fixed header, topic, packet id
    room = {kind: contract.MAX_PACKET_BYTES - 5 - 2 - len(topics[kind]) - 2 for kind in kinds}
    seen = 0  # events looked at

    def publish(kind: str, payload: bytes) -> None:
        publisher.publish(topics[kind], payload, qos=1, retain=kind == "config").wait_for_publish(5)

    @hypothesis_settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # one terminal for every example: its state carries over, so a shrunk example
        # would not fail alone; the first to fail is the one to look at
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )
    @given(st.sampled_from(kinds).flatmap(lambda k: st.tuples(st.just(k), payloads(k, room[k]))))
    def send(message: tuple[str, bytes]) -> None:
        """One message, then a marker config: once that is taken, the message was too."""
        nonlocal seen
        publish(*message)
        marker = f"m{len(terminal.events)}"
        publish("config", json.dumps({"v": 1, "staff_name": marker}).encode())
        terminal.wait_for(
            lambda e: e["ev"] == "config" and e["changed"] == ["staff_name"], after=seen
        )
        events = terminal.events[seen:]
        seen += len(events)
        assert not [e for e in events if e["ev"] == "disconnected"], events

    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
        seen = len(terminal.events)
        send()
        publish("config", json.dumps(CONFIG).encode())
        terminal.wait_for(lambda e: e["ev"] == "config", after=seen)
        terminal.wait_acked(rate_now(terminal))
        assert not terminal.of_kind("disconnected") and not terminal.of_kind("crash")
    finally:
        terminal.stop()
