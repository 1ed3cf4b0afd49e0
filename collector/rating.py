"""A rating message checked against PROTOCOL.md, and the point it becomes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from collector import checks, lineprotocol
from collector.checks import Rejected
from collector.topics import DeviceTopic

COUNTER = re.compile(r"[0-9A-Za-z-]{1,8}")
STAFF = re.compile(r"[0-9A-Za-z_-]{1,16}")
REASONS = frozenset({"attitude", "efficiency", "expertise", "environment", "other"})
MODES = frozenset({"prompt", "free"})
SEQ_DIGITS = 10**6
TICKET = re.compile(r"[^\x00-\x1f]{1,32}")


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

    def undated_time_ns(self, received_ms: int) -> int:
        """Where a rating without ts is stored the first time: its receipt, seq in the ns."""
        return received_ms * SEQ_DIGITS + self.seq % SEQ_DIGITS

    def point(
        self, received_ms: int, undated_ns: int | None = None, suspect_why: str | None = None
    ) -> str:
        """The rating point; its identity depends on the message alone, so replays overwrite it.

        A rating without ts (its terminal never learnt the time) has no such identity of its
        own: it goes at undated_ns, the time its first copy was stored at, found by the caller.
        """
        if self.ts is None:
            if undated_ns is None:
                raise ValueError("a rating without ts needs the time of its first copy")
            time_ns = undated_ns
        else:
            time_ns = self.ts * SEQ_DIGITS + self.seq % SEQ_DIGITS
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
            "delay_ms": None if self.ts is None else received_ms - self.ts,
            "suspect": int(suspect_why is not None),
            "suspect_why": suspect_why,
            "undated": 1 if self.ts is None else None,
        }
        return lineprotocol.line("rating", tags, fields, time_ns)


def parse(topic: DeviceTopic, payload: bytes) -> Rating:
    """Check one rating payload; raises Rejected with the reason."""
    msg = checks.json_object(payload)
    score = checks.optional_integer(msg, "score", 1, 5)
    reason = msg.get("reason")
    if reason is not None:
        if not isinstance(reason, str) or reason not in REASONS:
            raise Rejected("bad_field", f"reason {reason!r} is not one of {sorted(REASONS)}")
        if score is None or score > 2:
            raise Rejected(
                "contradiction",
                f"reason {reason!r} given with score {score}; only scores <= 2 have one",
            )
    mode = msg.get("mode")
    if not isinstance(mode, str) or mode not in MODES:
        raise Rejected("bad_field", f"mode {mode!r} is not prompt or free")
    return Rating(
        site=topic.site,
        device=topic.device,
        seq=checks.integer(msg, "seq", 1),
        boot=checks.integer(msg, "boot", 0),
        ts=checks.optional_integer(msg, "ts", 0),
        score=score,
        reason=reason,
        counter=checks.optional_text(msg, "counter", COUNTER),
        staff=checks.optional_text(msg, "staff", STAFF),
        ticket=checks.optional_text(msg, "ticket", TICKET),
        mode=mode,
        wait_ms=checks.optional_integer(msg, "wait_ms", 0),
    )
