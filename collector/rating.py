"""A rating message checked against PROTOCOL.md, and the point it becomes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from collector import checks
from collector.checks import Rejected
from collector.topics import DeviceTopic

COUNTER = re.compile(r"[0-9A-Za-z-]{1,8}")
STAFF = re.compile(r"[0-9A-Za-z_-]{1,16}")
REASONS = frozenset({"attitude", "efficiency", "expertise", "environment", "other"})
MODES = frozenset({"prompt", "free"})
SEQ_DIGITS = 10**6
# InfluxDB stores times up to 2262-04-11 (2**63 - 2 ns); a press time past it could not be a
# point's time, with the seq in its sub-millisecond digits
MAX_TS_MS = (2**63 - 2 - (SEQ_DIGITS - 1)) // SEQ_DIGITS
TICKET = re.compile(r"[^\x00-\x1f]{1,32}")


def score_classes(score: int) -> dict[str, int]:
    """The share fields of a scored rating (docs/contract.md): 1 or 0 whether it counts as
    satisfied (>= 4), good (>= 3) or poor (<= 2), so a share is one InfluxQL mean()."""
    return {"satisfied": int(score >= 4), "good": int(score >= 3), "poor": int(score <= 2)}


# the score and its share fields as they open a rating's field set, by score
SCORE_CLASSES = {
    score: f"score={score}i,"
    + "".join(f"{name}={value}i," for name, value in score_classes(score).items())
    for score in range(1, 6)
}


@dataclass(slots=True)  # not frozen: that triples the cost of building one, once per message
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
        # lineprotocol.line() would give the same text (a test holds them together); this is
        # written out because it runs once per message and parse() has checked every tag and
        # string against patterns without a character line protocol escapes.
        tags = ",counter=" + self.counter if self.counter else ""
        tags += ",device=" + self.device + ",mode=" + self.mode
        if self.reason:
            tags += ",reason=" + self.reason
        tags += ",site=" + self.site
        if self.staff:
            tags += ",staff=" + self.staff
        score = self.score
        fields = "" if score is None else SCORE_CLASSES[score]
        fields += f"rated={int(self.score is not None)}i,seq={self.seq}i"
        if self.wait_ms is not None:
            fields += f",wait_ms={self.wait_ms}i"
        if self.ts is not None:
            fields += f",delay_ms={received_ms - self.ts}i"
        fields += f",suspect={int(suspect_why is not None)}i"
        if suspect_why:
            fields += f',suspect_why="{suspect_why}"'
        if self.ts is None:
            fields += ",undated=1i"
        return f"rating{tags} {fields} {time_ns}"


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
        ts=checks.optional_integer(msg, "ts", 0, MAX_TS_MS),
        score=score,
        reason=reason,
        counter=checks.optional_text(msg, "counter", COUNTER),
        staff=checks.optional_text(msg, "staff", STAFF),
        ticket=checks.optional_text(msg, "ticket", TICKET),
        mode=mode,
        wait_ms=checks.optional_integer(msg, "wait_ms", 0),
    )
