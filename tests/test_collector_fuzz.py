"""Property-based: arbitrary bytes and topics never break the checks in an unplanned way."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from collector import device, lineprotocol, rating, topics
from collector.checks import Rejected
from collector.topics import DeviceTopic
from firmware import contract
from tests.samples import RATING_EXAMPLE

WHERE = DeviceTopic("sjz-yuhua", "ev-1", "rating")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def outcome(kind: str, payload: bytes) -> str:
    """A point, or Rejected with a known kind; anything else fails the test."""
    try:
        if kind == "rating":
            return rating.parse(WHERE, payload).point(1_795_347_568_123, 1)
        if kind == "telemetry":
            return device.telemetry(WHERE, payload, 1).point()
        report = device.state(WHERE, payload, 1)
        return report.point() if report else ""
    except Rejected as e:
        assert e.kind in {
            "oversize",
            "malformed_json",
            "unknown_version",
            "wrong_type",
            "out_of_range",
            "bad_field",
            "contradiction",
        }
        assert str(e)
        return ""


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["rating", "telemetry", "state"]), st.binary(max_size=600))
def test_arbitrary_bytes_give_a_point_or_a_named_rejection(kind, payload):
    outcome(kind, payload)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["rating", "telemetry", "state"]),
    st.dictionaries(
        st.sampled_from(
            [*sorted(RATING_EXAMPLE), "online", "rssi", "queue", "fw", "stuck_keys", "time_known"]
        ),
        JSON_VALUES,
        max_size=8,
    ),
)
def test_arbitrary_fields_over_a_good_message(kind, changes):
    point = outcome(kind, json.dumps({**RATING_EXAMPLE, "online": True, **changes}).encode())
    if point:
        assert "\n" not in point  # one line, one point


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_topics_parse_only_into_valid_names(topic):
    try:
        parsed = topics.parse(topic, "svc/v1")
    except topics.TopicError:
        return
    assert topics.SITE.fullmatch(parsed.site) and topics.SITE.fullmatch(parsed.device)
    assert topic == f"svc/v1/{parsed.site}/{parsed.device}/{parsed.kind}"


def _generic_rating_line(
    r: rating.Rating, received_ms: int, undated_ns: int, why: str | None
) -> str:
    """The rating point as the contract's storage rules (docs/contract.md) state it, through the
    generic encoder."""
    tags = {
        "site": r.site,
        "device": r.device,
        "counter": r.counter,
        "staff": r.staff,
        "mode": r.mode,
        "reason": r.reason,
    }
    fields: dict[str, lineprotocol.FieldValue | None] = {
        "score": r.score,
        **({} if r.score is None else contract.score_classes(r.score)),
        "rated": int(r.score is not None),
        "seq": r.seq,
        "wait_ms": r.wait_ms,
        "delay_ms": None if r.ts is None else received_ms - r.ts,
        "suspect": int(why is not None),
        "suspect_why": why,
        "undated": 1 if r.ts is None else None,
    }
    time_ns = undated_ns if r.ts is None else r.ts * 10**6 + r.seq % 10**6
    return lineprotocol.line("rating", tags, fields, time_ns)


@given(
    st.fixed_dictionaries(
        {
            "seq": st.integers(1, 2**40),
            "ts": st.none() | st.integers(0, contract.MAX_TS_MS),
            "score": st.none() | st.integers(1, 5),
            "counter": st.none() | st.from_regex(rating.COUNTER, fullmatch=True),
            "staff": st.none() | st.from_regex(rating.STAFF, fullmatch=True),
            "mode": st.sampled_from(sorted(rating.MODES)),
            "wait_ms": st.none() | st.integers(0, 10**7),
        }
    ),
    st.sampled_from(sorted(rating.REASONS)),
    st.sampled_from([None, "fast_press", "no_window", "burst", "regular"]),
    st.integers(0, 2**45),
    st.from_regex(topics.SITE, fullmatch=True),
    st.from_regex(topics.SITE, fullmatch=True),
)
def test_rating_point_is_what_the_generic_encoder_writes(
    changes, reason, why, received_ms, site, device_name
):
    body = {**RATING_EXAMPLE, **changes}
    body["reason"] = reason if body["score"] is not None and body["score"] <= 2 else None
    parsed = rating.parse(DeviceTopic(site, device_name, "rating"), json.dumps(body).encode())
    undated_ns = received_ms * 10**6 + 7
    assert parsed.point(received_ms, undated_ns, why) == _generic_rating_line(
        parsed, received_ms, undated_ns, why
    )
