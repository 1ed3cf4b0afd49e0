"""Local Mosquitto and InfluxDB servers as child processes, for tests and the demo.

Each server gets a generated config file, a free loopback port and its own data folder,
and is stopped with its process when the context ends.
"""

from devstack.collector import CollectorProcess, collector_env
from devstack.console import ConsoleServer
from devstack.influxdb import InfluxServer
from devstack.mosquitto import HallBroker, MosquittoServer, hall_folder
from devstack.process import ServerFailedError

__all__ = [
    "CollectorProcess",
    "ConsoleServer",
    "HallBroker",
    "InfluxServer",
    "MosquittoServer",
    "ServerFailedError",
    "collector_env",
    "hall_folder",
]
