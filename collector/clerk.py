"""The clerks' names, from the logins: a retained `config` message (docs/contract.md) that sets
a clerk's staff number and name on a terminal becomes a `clerk` point, read by the appraisal.

A config is no rating: one that a terminal would ignore (larger than it reads, or refused by
the firmware's own check of its fields, firmware/config.py) is counted and logged by the
checker, never dead-lettered; so is one whose name holds a control character, never stored.

Whether a login's point is written is decided as it is stored (`Names`, in the storing thread,
which alone writes, in order): a login published now (delivered with retain 0) when its name
is not the last InfluxDB holds for that hall and staff number; a retained copy handed over
again at a subscribe (retain 1: the collector subscribes to config without "retain as
published") only when InfluxDB holds no name at all for them. A retained copy is no news: it
may be a terminal's long gone, whose staff number another clerk now holds, and written at its
receipt it would pass for the newest login at every start of the collector.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import structlog

from collector import lineprotocol
from collector.checks import CONTROL, Rejected
from collector.influx import InfluxError, InfluxHttp
from firmware import contract
from fwtools.unix_port import firmware_module

# the terminal's own module, run under CPython as the simulator runs it: its changes() is the
# rule of which fields a config sets, and which configs are ignored whole
config_fw = firmware_module("config")
LOOKUP_KEYS = 100  # (site, staff) pairs looked up by one SELECT

log = structlog.get_logger("collector")

Key = tuple[str, str]  # site, staff


class Login(NamedTuple):
    """A clerk logged in at a terminal of a hall, by staff number and name; replayed: a retained
    copy the broker handed over again at a subscribe, not a login published now."""

    site: str
    staff: str
    name: str
    replayed: bool = False

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


class Names:
    """The name InfluxDB holds last for each hall and staff number, as far as the storing thread
    knows: looked up the first time a key comes (one query a batch, for the keys it has not
    met), then kept as the thread writes its points. Used by the storing thread alone."""

    def __init__(self) -> None:
        self._last: dict[Key, str | None] = {}  # None: InfluxDB holds no name for the key

    def news(self, influx: InfluxHttp, logins: list[Login]) -> list[bool]:
        """Whether each login, in order, is written: one published now when its name is not
        the last (InfluxDB's, or one before it in the list), a replayed one only when there is
        no name at all. Raises InfluxError while InfluxDB is out; should it refuse the look-up
        itself, those keys stay unknown: a login published now is written, a replay not."""
        keys = {(login.site, login.staff) for login in logins}
        self._look_up(influx, sorted(keys - self._last.keys()))
        last = dict(self._last)  # as the logins before each in the list leave it
        kept = []
        for login in logins:
            key = (login.site, login.staff)
            if key in last:
                keep = last[key] is None if login.replayed else last[key] != login.name
            else:  # InfluxDB refused the look-up: a login now is news, a replay is not
                keep = not login.replayed
            if keep:
                last[key] = login.name
            kept.append(keep)
        return kept

    def written(self, logins: list[Login]) -> None:
        """These logins' points are in InfluxDB, in this order."""
        for login in logins:
            self._last[(login.site, login.staff)] = login.name

    def _look_up(self, influx: InfluxHttp, keys: list[Key]) -> None:
        if not keys:
            return
        # site and staff have passed the contract's name rules: nothing in them needs quoting
        statements = [
            'SELECT last("name") AS "name" FROM "clerk" WHERE '
            + " OR ".join(f"(\"site\"='{site}' AND \"staff\"='{staff}')" for site, staff in part)
            + ' GROUP BY "site", "staff"'
            for part in (keys[i : i + LOOKUP_KEYS] for i in range(0, len(keys), LOOKUP_KEYS))
        ]
        try:
            rows = influx.query(";".join(statements))
        except InfluxError as e:
            if not e.permanent:
                raise
            log.warning("clerk_lookup_refused", error=str(e), keys=len(keys))
            return
        found = {(row.get("site"), row.get("staff")): row.get("name") for row in rows}
        for key in keys:
            name = found.get(key)
            self._last[key] = name if isinstance(name, str) else None
