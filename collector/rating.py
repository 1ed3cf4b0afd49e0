"""A rating message checked against the contract (docs/contract.md), and the point it becomes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from collector import checks
from collector.checks import Rejected
from collector.topics import DeviceTopic
from firmware import contract

# the contract's rules, as the fast paths below use them
COUNTER = re.compile(contract.name_pattern("counter"))
STAFF = re.compile(contract.name_pattern("staff"))
REASONS = frozenset(contract.REASONS)
MODES = frozenset(contract.MODES)
SEQ_DIGITS = contract.SEQ_DIGITS

# the score and its share fields as they open a rating's field set, by score
SCORE_CLASSES = {
    score: f"score={score}i,"
    + "".join(f"{name}={value}i," for name, value in contract.score_classes(score).items())
    for score in contract.SCORES
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
    aspects: dict[str, int | None] | None = None  # the aspect mode's (docs/contract.md)

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
            time_ns = contract.point_time_ns(self.ts, self.seq)
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
        if self.aspects is not None:
            for name, value in self.aspects.items():
                if value is not None:
                    fields += f",{name}={value}i"
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
    score = checks.optional_integer(msg, "score", contract.SCORES[0], contract.SCORES[-1])
    reason = msg.get("reason")
    if reason is not None:
        if not isinstance(reason, str) or reason not in REASONS:
            raise Rejected("bad_field", f"reason {reason!r} is not one of {sorted(REASONS)}")
        if score is None or score > contract.POOR_MAX:
            raise Rejected(
                "contradiction",
                f"reason {reason!r} given with score {score}; only scores <= "
                f"{contract.POOR_MAX} have one",
            )
    mode = msg.get("mode")
    if not isinstance(mode, str) or mode not in MODES:
        raise Rejected("bad_field", f"mode {mode!r} is not one of {contract.MODES}")
    aspects = msg.get("aspects")
    if aspects is not None:
        _check_aspects(aspects, score, reason)
    return Rating(
        site=topic.site,
        device=topic.device,
        seq=checks.integer(msg, "seq", contract.SEQ_MIN),
        boot=checks.integer(msg, "boot", 0),
        ts=checks.optional_integer(msg, "ts", 0, contract.MAX_TS_MS),
        score=score,
        reason=reason,
        counter=checks.optional_text(msg, "counter", COUNTER),
        staff=checks.optional_text(msg, "staff", STAFF),
        ticket=_ticket(msg.get("ticket")),
        mode=mode,
        wait_ms=checks.optional_integer(msg, "wait_ms", 0),
        aspects=aspects,
    )


def _check_aspects(aspects: object, score: int | None, reason: object) -> None:
    if not contract.valid_aspects(aspects):
        raise Rejected(
            "bad_field",
            f"aspects {aspects!r} is not an object of {', '.join(contract.ASPECTS)}, "
            "each 1 to 5 or null",
        )
    overall = contract.aspects_overall(aspects)  # type: ignore[arg-type]  # checked above
    if (score, reason) != overall:
        raise Rejected(
            "contradiction",
            f"score {score} and reason {reason!r} do not follow from aspects {aspects!r} "
            f"(they make {overall[0]} and {overall[1]!r})",
        )


def _ticket(value: object) -> str | None:
    if value is None or contract.valid_ticket(value):
        return value  # type: ignore[return-value]  # valid_ticket has checked it is a str
    raise Rejected(
        "bad_field",
        f"ticket {value!r} is not 1 to {contract.TICKET_MAX} characters without control ones",
    )


def seq_of(payload: bytes) -> int | None:
    """The seq of a rating that failed its checks, when it has one: the dead-lettered rating
    is acknowledged too, so its terminal stops sending it (the dead-letter file keeps it), or
    a terminal whose head of queue is such a rating would send nothing newer. A payload that is
    JSON but for its text (bytes that are not UTF-8, as MicroPython writes a lone surrogate) is
    read with those bytes replaced. Never raises."""
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError:
        if len(payload) > contract.MAX_PAYLOAD_BYTES:
            return None
        try:  # orjson, not json: it has a depth limit, so "[[[[…" cannot recurse too deep
            msg = orjson.loads(payload.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    seq = msg.get("seq") if isinstance(msg, dict) else None
    return seq if contract.valid_seq(seq) else None
