"""Topic names of the contract: svc/v1/{site}/{device}/{kind}."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from firmware import contract

SITE = re.compile(contract.name_pattern("site"))
DEVICE = re.compile(contract.name_pattern("device"))


class TopicError(ValueError):
    """The topic does not follow the contract's pattern."""


@dataclass(frozen=True)
class DeviceTopic:
    site: str
    device: str
    kind: str


@lru_cache(maxsize=65_536)  # a topic comes back with every message its terminal sends
def parse(topic: str, root: str) -> DeviceTopic:
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic outside root {root!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3:
        raise TopicError("topic must be {root}/{site}/{device}/{kind}")
    return device_topic(*parts)


def device_topic(site: str, device: str, kind: str) -> DeviceTopic:
    """A device's topic from its levels, each name checked against the contract."""
    if not SITE.fullmatch(site):
        raise TopicError(f"site {site!r} breaks {SITE.pattern}")
    if not DEVICE.fullmatch(device):
        raise TopicError(f"device {device!r} breaks {DEVICE.pattern}")
    return DeviceTopic(site, device, kind)
