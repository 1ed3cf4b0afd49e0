"""What neither a collector nor a payload can do to the real firmware's link and queue, under
the MicroPython Unix port against the real Mosquitto: a rating never acknowledged blocks none
after it; a message larger than a 64 KB heap holds is let go, and the link kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import MosquittoServer
from fwtools import image
from tests.servers import serve, start_collector
from tests.terminals import Listener, Withholding, device_topic, make_terminal

HEAP = "64K"


def rate(terminal, n):
    terminal.clerk_key()
    terminal.wait_count("opened", n)
    terminal.press(0)
    terminal.wait_for(lambda e: e["ev"] == "rated" and e["seq"] == n)


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
        terminal.wifi(False)  # a new connection sends it again at once
        terminal.wifi(True)
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
