"""The real parts as the tests start them, each made one way: servers that stop with the
fixture, a collector for a test's own topic root and database, and waiting for what they do."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
import pytest

from devstack import (
    CollectorProcess,
    InfluxServer,
    MosquittoServer,
    ServerFailedError,
    collector_env,
)
from devstack.process import ChildServer

S = TypeVar("S", bound=ChildServer)
T = TypeVar("T")
LINGER_MS = "50"  # a batch waits this long for more: tests send a few messages at a time


def serve(server: S) -> Iterator[S]:
    """A fixture's server: started (or the test fails with why), stopped after."""
    try:
        server.start()
    except ServerFailedError as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


@contextmanager
def running(server: S) -> Iterator[S]:
    """A server for a block of a test: started (or the test fails with why), stopped when
    the block ends, also by a failed assertion."""
    try:
        server.start()
    except ServerFailedError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def start_collector(
    broker: MosquittoServer,
    influx: InfluxServer,
    folder: Path,
    root: str,
    database: str,
    name: str = "collector",
    *,
    start: bool = True,
    **settings: str,
) -> CollectorProcess:
    """A collector on this topic root and database, started unless start is False; its
    client id is `name` and the root's first level, so that tests sharing a broker never
    share a session."""
    client_id = f"{name}-{root.split('/', maxsplit=1)[0]}"
    env = collector_env(root, database, client_id, **{"batch_linger_ms": LINGER_MS, **settings})
    proc = CollectorProcess(broker, influx, folder, env)
    if start:
        proc.start()
    return proc


def wait_for(
    check: Callable[[], T],
    until: Callable[[T], object] = bool,
    timeout_s: float = 15.0,
    every_s: float = 0.1,
) -> T:
    """check() again and again until `until` holds for its answer or timeout_s has passed;
    returns the last answer either way, for the test's assertion to show."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(every_s)


def subscribe(client: mqtt.Client, topic: str, qos: int = 1) -> None:
    """Subscribe a started client and wait for the broker's SUBACK: a message sent before it
    would not reach the subscription."""
    acked: set[int] = set()
    done = threading.Condition()

    def on_subscribe(_c: mqtt.Client, _u: object, mid: int, *_: object) -> None:
        with done:
            acked.add(mid)
            done.notify_all()

    client.on_subscribe = on_subscribe
    _, mid = client.subscribe(topic, qos=qos)
    with done:
        assert done.wait_for(lambda: mid in acked, timeout=10), f"no SUBACK for {topic}"


class Acks:
    """What collectors acknowledge on the terminals' ack topics: seqs, in arrival order."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.lock = threading.Lock()

    def on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seqs.extend(json.loads(msg.payload)["seqs"])

    def count(self, seq: int) -> int:
        with self.lock:
            return self.seqs.count(seq)

    def wait(self, seq: int, times: int = 1, timeout_s: float = 20) -> bool:
        return bool(wait_for(lambda: self.count(seq) >= times, timeout_s=timeout_s))
