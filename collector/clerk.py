"""The clerks' names, from the logins: a retained `config` message (docs/contract.md) that sets
a clerk's staff number and name on a terminal becomes a `clerk` point, read by the appraisal.

A config is no rating: one that a terminal would ignore (larger than it reads, or refused by
the firmware's own check of its fields, firmware/config.py) is counted and logged by the
checker, never dead-lettered; so is one whose name holds a control character, never stored.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from collector import lineprotocol
from collector.checks import Rejected
from firmware import contract
from fwtools.unix_port import firmware_module

# the terminal's own module, run under CPython as the simulator runs it: its changes() is the
# rule of which fields a config sets, and which configs are ignored whole
config_fw = firmware_module("config")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's control characters (Cc)


class Login(NamedTuple):
    """A clerk logged in at a terminal of a hall, by staff number and name."""

    site: str
    staff: str
    name: str

    def point(self, received_ns: int) -> str:
        """The `clerk` point, at receipt time (in ns, as a device point)."""
        tags = {"site": self.site, "staff": self.staff}
        return lineprotocol.line("clerk", tags, {"name": self.name}, received_ns)


def packet_bytes(topic: str, payload: bytes, qos: int) -> int:
    """How long a terminal finds a config's PUBLISH (its remaining length in MQTT 3.1.1, which
    terminals speak: the topic and its length, a packet id at QoS 1 or 2, the payload). One
    over contract.DEVICE_READ_BYTES it lets go unread (firmware/mqtt.py)."""
    return 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)


def login(site: str, payload: bytes, packet: int | None = None) -> Login | None:
    """The clerk a config logs in, with their name; None when it names none (an empty payload
    clears a retained one; no staff, staff null, or no name). Raises Rejected for a config a
    terminal would ignore whole: its packet (`packet_bytes`; None: the payload alone) too long
    for a terminal to read, or fields firmware/config.py refuses (its `v` may be left out);
    and for a name with a control character."""
    if not payload:
        return None
    size = len(payload) if packet is None else packet
    if size > contract.DEVICE_READ_BYTES:
        limit = contract.DEVICE_READ_BYTES
        raise Rejected("oversize", f"a packet of {size} bytes: a terminal reads none over {limit}")
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise Rejected("malformed_json", f"malformed JSON: {e}") from None
    try:
        fields: dict[str, Any] = config_fw.changes(msg)
    except config_fw.ConfigError as e:
        raise Rejected("bad_config", str(e)) from None
    staff, name = fields.get("staff"), fields.get("staff_name")
    if isinstance(name, str) and CONTROL.search(name):
        raise Rejected("bad_config", f"staff_name: {name!r} holds a control character")
    if isinstance(staff, str) and isinstance(name, str) and name.strip():
        return Login(site, staff, name)
    return None
