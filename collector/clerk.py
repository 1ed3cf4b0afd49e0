"""The clerks' names, from the logins: a retained `config` message (docs/contract.md) that sets
a clerk's staff number and name on a terminal becomes a `clerk` point, read by the appraisal.

A config is no rating: one that a terminal would ignore (not a JSON object, another `v`, a
field the contract does not allow) is counted and logged by the checker, never dead-lettered.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from collector import lineprotocol
from collector.checks import MAX_PAYLOAD_BYTES, Rejected
from firmware import contract


class Login(NamedTuple):
    """A clerk logged in at a terminal of a hall, by staff number and name."""

    site: str
    staff: str
    name: str

    def point(self, received_ns: int) -> str:
        """The `clerk` point, at receipt time (in ns, as a device point)."""
        tags = {"site": self.site, "staff": self.staff}
        return lineprotocol.line("clerk", tags, {"name": self.name}, received_ns)


def login(site: str, payload: bytes) -> Login | None:
    """The clerk a config logs in, with their name; None when it names none (an empty payload
    clears a retained one; no staff, staff null, or no name). Raises Rejected for a config a
    terminal would ignore whole, as firmware/config.py checks it (its `v` may be left out)."""
    if not payload:
        return None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("oversize", f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise Rejected("malformed_json", f"malformed JSON: {e}") from None
    if not isinstance(msg, dict):
        raise Rejected("malformed_json", "payload must be a JSON object")
    if msg.get("v", contract.VERSION) != contract.VERSION:
        raise Rejected("unknown_version", f"unknown schema version v={msg.get('v')!r}")
    for key in contract.CONFIG_DEFAULTS:
        why = contract.config_problem(key, msg[key]) if key in msg else None
        if why:
            raise Rejected("bad_field", why)
    staff, name = msg.get("staff"), msg.get("staff_name")
    if isinstance(staff, str) and isinstance(name, str) and name.strip():
        return Login(site, staff, name)
    return None
