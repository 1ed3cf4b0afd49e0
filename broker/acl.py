"""The broker's ACL, written from the contract's topic table (who publishes each kind).

A device's username is `{site}/{device}`, so Mosquitto's `%u` fills two topic levels: a
`pattern` line lets each device publish on its own topics and read its own, and no other's.
Collectors read what devices report, and the logins tools publish (`config`: the clerks'
names), and write the rest of the collectors' kinds; tools write what tools publish (logins,
prompts, and updates over the air: only a tools or console account offers an image), and
read the terminals' `state` (the login a terminal took) and `fetch` (a terminal asking for
a piece of an update), none of their ratings or telemetry.
Mosquitto checks reads when it delivers, not when a client subscribes: a device may
subscribe to `#` and receive nothing it may not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from firmware import contract

# service roles; "device" is every account named site/device
ROLES = ("collector", "tools", "console")
# a role that publishes what another does in the contract's table: the hall console sets
# logins and opens windows as a hall's tools do
PUBLISHES_AS = {"console": "tools"}
# kinds each service role reads: the collector what devices report, and the clerks' names
# the logins carry (docs/contract.md, "clerk"); tools read a login back from the terminal's
# retained state (its counter and staff, and the image it runs) and answer a terminal's
# fetch of an update, never a rating, telemetry or an alert (which names a clerk's poor
# ratings); the console also reads who each terminal has now, whoever set it (the retained
# config), and the hall's alerts, which it passes on to managers
READS = {
    "collector": ("rating", "state", "telemetry", "config"),
    "tools": ("state", "fetch"),
    "console": ("state", "config", "alert"),
}


def _device_lines(root: str, name: str = "%u", line: str = "pattern") -> list[str]:
    lines = []
    for kind, (_qos, _retain, publisher) in contract.DEVICE_TOPICS.items():
        access = "write" if publisher == "device" else "read"
        lines.append(f"{line} {access} {root}/{name}/{kind}")
    return lines


def _service_lines(root: str, role: str) -> list[str]:
    publishes = PUBLISHES_AS.get(role, role)
    reads = READS.get(role, ())
    lines = []
    for levels, table in (("+/+", contract.DEVICE_TOPICS), ("+", contract.SITE_TOPICS)):
        for kind, (_qos, _retain, publisher) in table.items():
            write = publisher == publishes
            read = kind in reads
            if write or read:
                access = "readwrite" if write and read else "write" if write else "read"
                lines.append(f"topic {access} {root}/{levels}/{kind}")
    return lines


def render(root: str, services: Mapping[str, str], seconds: Iterable[str] = ()) -> str:
    """The acl_file: the devices' patterns, a block per terminal's second account (the name
    site/device/2, which a password rotation moves it to: its own topics, as the pattern gives
    them to site/device), then one block per service account (name: role)."""
    lines = [
        "# Written by svc-broker from its accounts (svc-broker.json); changed by svc-broker,",
        "# not by hand. Anything not granted here is denied.",
        "",
        "# every device, by its username {site}/{device}",
        *_device_lines(root),
    ]
    for name in seconds:
        own = name.rpartition("/")[0]
        lines += ["", f"# {own}'s second account", f"user {name}"]
        lines += _device_lines(root, own, "topic")
    for name, role in sorted(services.items()):
        lines += ["", f"# {role}", f"user {name}", *_service_lines(root, role)]
    return "\n".join(lines) + "\n"
