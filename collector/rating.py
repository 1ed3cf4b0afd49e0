"""A rating message checked against PROTOCOL.md, and the point it becomes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from collector import lineprotocol
from collector.topics import DeviceTopic

MAX_PAYLOAD_BYTES = 4096
COUNTER = re.compile(r"[0-9A-Za-z-]{1,8}")
STAFF = re.compile(r"[0-9A-Za-z_-]{1,16}")
REASONS = frozenset({"attitude", "efficiency", "expertise", "environment", "other"})
MODES = frozenset({"prompt", "free"})
SEQ_DIGITS = 10**6
TICKET = re.compile(r"[^\x00-\x1f]{1,32}")


class Rejected(ValueError):
    """The message breaks the contract: kind is what it is counted as, the text why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Rating:
    site: str
    device: str
    seq: int
    boot: int
    ts: int | None
    score: int | None
    reason: str | None
    counter: str | None
    staff: str | None
    ticket: str | None
    mode: str
    wait_ms: int | None

    def point(self, received_ms: int) -> str:
        """The rating point; its identity depends on the message alone, so replays overwrite it."""
        if self.ts is None:
            raise Rejected(
                "unsupported",
                "ts is null: storing ratings without a press time is not supported yet",
            )
        tags = {
            "site": self.site,
            "device": self.device,
            "counter": self.counter,
            "staff": self.staff,
            "mode": self.mode,
            "reason": self.reason,
        }
        fields: dict[str, lineprotocol.FieldValue | None] = {
            "score": self.score,
            "rated": int(self.score is not None),
            "seq": self.seq,
            "wait_ms": self.wait_ms,
            "delay_ms": received_ms - self.ts,
            "suspect": 0,
        }
        time_ns = self.ts * SEQ_DIGITS + self.seq % SEQ_DIGITS
        return lineprotocol.line("rating", tags, fields, time_ns)


def _int(msg: dict[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = msg.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Rejected("wrong_type", f"{key} must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        raise Rejected("out_of_range", f"{key} {value} out of range")
    return value


def _optional_int(msg: dict[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    return None if msg.get(key) is None else _int(msg, key, low, high)


def _optional_str(msg: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise Rejected("bad_field", f"{key} {value!r} breaks {pattern.pattern}")
    return value


def parse(topic: DeviceTopic, payload: bytes) -> Rating:
    """Check one rating payload; raises Rejected with the reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("oversize", f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        msg = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Rejected("malformed_json", f"malformed JSON: {e}") from None
    if not isinstance(msg, dict):
        raise Rejected("malformed_json", "payload must be a JSON object")
    if msg.get("v") != 1:
        raise Rejected("unknown_version", f"unknown schema version v={msg.get('v')!r}")
    score = _optional_int(msg, "score", 1, 5)
    reason = msg.get("reason")
    if reason is not None:
        if reason not in REASONS:
            raise Rejected("bad_field", f"reason {reason!r} is not one of {sorted(REASONS)}")
        if score is None or score > 2:
            raise Rejected(
                "contradiction",
                f"reason {reason!r} given with score {score}; only scores <= 2 have one",
            )
    mode = msg.get("mode")
    if mode not in MODES:
        raise Rejected("bad_field", f"mode {mode!r} is not prompt or free")
    return Rating(
        site=topic.site,
        device=topic.device,
        seq=_int(msg, "seq", 1),
        boot=_int(msg, "boot", 0),
        ts=_optional_int(msg, "ts", 0),
        score=score,
        reason=reason,
        counter=_optional_str(msg, "counter", COUNTER),
        staff=_optional_str(msg, "staff", STAFF),
        ticket=_optional_str(msg, "ticket", TICKET),
        mode=mode,
        wait_ms=_optional_int(msg, "wait_ms", 0),
    )
