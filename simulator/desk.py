"""The hall's front desk: logs clerks in and out of terminals, as a hall's tool would.

Each change is a retained `config` message (docs/contract.md) on the terminal's own topic, with
the clerk's staff number and name, or nulls when nobody is logged in; a terminal that is
off the network meanwhile gets it when it comes back.
"""

from __future__ import annotations

import json
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware import contract
from simulator.access import Access
from simulator.roster import Roster

PUBLISH_TIMEOUT_S = 10.0


class FrontDesk:
    def __init__(self, access: Access, root: str, names: dict[tuple[str, str], str]) -> None:
        self.root = root
        self.names = names  # clerk's name by (site, staff)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"svc-sim-desk-{uuid.uuid4().hex[:8]}"
        )
        access.log_in(self._client)
        self._client.connect(*access.address)
        self._client.loop_start()

    def log_in(self, site: str, device: str, staff: str | None) -> None:
        """Set who is logged in at that terminal (None: nobody). Waits for the broker's
        acknowledgement while connected; while not, paho keeps the message and sends it on
        reconnecting."""
        config = {
            "v": contract.VERSION,
            "staff": staff,
            "staff_name": None if staff is None else self.names.get((site, staff)),
        }
        qos, retain, _ = contract.DEVICE_TOPICS["config"]
        topic = contract.topic(self.root, site, device, "config")
        info = self._client.publish(topic, json.dumps(config), qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def front_desk(roster: Roster, access: Access, root: str) -> FrontDesk | None:
    """The desk for a run, where a hall of its scenario keeps a roster; None where none does."""
    if not any(hall.clerks for hall in roster.scenario.halls):
        return None
    return FrontDesk(access, root, roster.names())
