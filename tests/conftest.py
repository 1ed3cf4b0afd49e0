"""Real servers for the tests: Mosquitto and InfluxDB as child processes on free ports.

The servers live for the whole session; each test gets its own topic root and
database, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import CollectorProcess, InfluxServer, MosquittoServer, collector_env
from firmware import contract
from fwtools.unix_port import FirmwareError, micropython_binary
from tests.hall import COLLECTOR, Hall, hall_broker
from tests.servers import Acks, serve, start_collector, subscribe

pytest_plugins = ["tests.known_month"]  # the known_month fixture


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    yield from serve(MosquittoServer(tmp_path_factory.mktemp("mosquitto")))


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker of the test's own, which it may stop, restart or freeze."""
    yield from serve(MosquittoServer(tmp_path / "broker"))


@pytest.fixture
def hall() -> Iterator[Hall]:
    """A broker as svc-broker sets one up for a hall: TLS only, an account each, the ACL."""
    yield from hall_broker()


@pytest.fixture
def own_influx(tmp_path: Path) -> Iterator[InfluxServer]:
    """An InfluxDB of the test's own, which it may stop and restart."""
    yield from serve(InfluxServer(tmp_path / "influx"))


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    yield from serve(InfluxServer(tmp_path_factory.mktemp("influxdb")))


@pytest.fixture(scope="session")
def micropython() -> str:
    try:
        return micropython_binary()
    except FirmwareError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def topic_root() -> str:
    return f"t{uuid.uuid4().hex[:8]}/v1"


@pytest.fixture
def database() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def collector(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    tmp_path: Path,
    topic_root: str,
    database: str,
) -> Iterator[CollectorProcess]:
    proc = start_collector(
        mosquitto, influxdb, tmp_path / "collector", topic_root, database, http="127.0.0.1:0"
    )
    yield proc
    assert proc.stop() == 0, proc.log()[-2000:]


@pytest.fixture
def publisher(mosquitto: MosquittoServer, topic_root: str) -> Iterator[mqtt.Client]:
    """A plain MQTT client on the test broker, for publishing what terminals would."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{topic_root[:9]}")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def acks(mosquitto, topic_root) -> Iterator[Acks]:
    found = Acks()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acks-{topic_root[:9]}")
    client.on_message = found.on_message
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    subscribe(client, f"{topic_root}/+/+/ack")
    yield found
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def hall_collector(hall: Hall, influxdb: InfluxServer, database: str, tmp_path: Path) -> Iterator:
    """The hall's collector, under its account over TLS, taking only known terminals."""
    service = hall.add_service(COLLECTOR, "collector")
    env = collector_env(
        contract.ROOT,
        database,
        COLLECTOR,
        service,
        batch_linger_ms="50",
        known_devices=str(hall.folder.path / "devices.txt"),
        http="127.0.0.1:0",
    )
    proc = CollectorProcess(hall.broker, influxdb, tmp_path / "collector", env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
