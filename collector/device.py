"""Telemetry and state messages checked against the contract (docs/contract.md), and their
`device` points."""

from __future__ import annotations

import re
from dataclasses import dataclass

from collector import checks, lineprotocol
from collector.checks import Rejected
from collector.topics import DeviceTopic
from firmware import contract
from fwtools.unix_port import firmware_module

FW = re.compile(contract.name_pattern("fw"))
UPDATE_RESULTS = firmware_module("update").UPDATE_RESULTS


Fields = dict[str, lineprotocol.FieldValue | None]


@dataclass(frozen=True)
class DeviceReport:
    """What one telemetry or state message says about a terminal."""

    where: DeviceTopic
    fields: Fields
    received_ns: int

    def point(self) -> str:
        tags = {"site": self.where.site, "device": self.where.device}
        return lineprotocol.line("device", tags, self.fields, self.received_ns)

    def number(self, name: str) -> int | None:
        value = self.fields.get(name)
        return value if isinstance(value, int) else None


def telemetry(where: DeviceTopic, payload: bytes, received_ns: int) -> DeviceReport:
    """Health and running counters, at receipt time (ns, so two messages never merge)."""
    msg = checks.json_object(payload)
    fields: Fields = {
        name: checks.optional_integer(msg, name, 0) for name in contract.TELEMETRY_COUNTS
    }
    fields["boot"] = checks.optional_integer(msg, "boot", 0)
    fields["rssi"] = checks.optional_integer(msg, "rssi", *contract.RSSI_RANGE)
    fields["battery_mv"] = checks.optional_integer(msg, "battery_mv", *contract.BATTERY_MV_RANGE)
    fields["fw"] = checks.optional_text(msg, "fw", FW)
    fields["online"] = 1
    stuck = msg.get("stuck_keys")
    if stuck is not None:
        if not isinstance(stuck, list) or not all(isinstance(k, int) for k in stuck):
            raise Rejected("wrong_type", "stuck_keys must be a list of key numbers")
        fields["stuck_keys"] = len(stuck)
    if "time_known" in msg:
        fields["time_known"] = int(checks.boolean(msg, "time_known"))
    return DeviceReport(where, fields, received_ns)


def state(where: DeviceTopic, payload: bytes, received_ns: int) -> DeviceReport | None:
    """online 1/0 (the last will says 0); None for an empty payload, which clears a retained one."""
    if not payload:
        return None
    msg = checks.json_object(payload)
    fields: Fields = {
        "online": int(checks.boolean(msg, "online")),
        "boot": checks.optional_integer(msg, "boot", 0),
        "fw": checks.optional_text(msg, "fw", FW),
        "dropped": checks.optional_integer(msg, "dropped", 0),
        "requeued": checks.optional_integer(msg, "requeued", 0),
    }
    stuck = msg.get("stuck_keys")
    if isinstance(stuck, list):
        fields["stuck_keys"] = len(stuck)
    report = msg.get("update")  # the last update over the air: its result
    if isinstance(report, dict) and report.get("result") in UPDATE_RESULTS:
        fields["update"] = report["result"]
    return DeviceReport(where, fields, received_ns)
