"""Real servers for the tests: Mosquitto and InfluxDB as child processes on free ports.

The servers live for the whole session; each test gets its own topic root and
database, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import CollectorProcess, InfluxServer, MosquittoServer, ServerFailedError
from devstack.process import ChildServer
from fwtools.unix_port import FirmwareError, micropython_binary

S = TypeVar("S", bound=ChildServer)

pytest_plugins = ["tests.known_month"]  # the known_month fixture


def serve(server: S) -> Iterator[S]:
    try:
        server.start()
    except ServerFailedError as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    yield from serve(MosquittoServer(tmp_path_factory.mktemp("mosquitto")))


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
    proc = CollectorProcess(
        mosquitto,
        influxdb,
        tmp_path / "collector",
        {
            "SVC_TOPIC_ROOT": topic_root,
            "SVC_INFLUX_DB": database,
            "SVC_CLIENT_ID": f"collector-{topic_root.split('/', maxsplit=1)[0]}",
            "SVC_BATCH_LINGER_MS": "50",
            "SVC_HTTP": "127.0.0.1:0",
        },
    )
    proc.start()
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
