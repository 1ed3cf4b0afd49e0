"""Property-based: arbitrary bytes and topics never break the checks in an unplanned way."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from collector import device, rating, topics
from collector.checks import Rejected
from collector.topics import DeviceTopic
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
def test_arbitrary_bytes(kind, payload):
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
def test_arbitrary_topics(topic):
    try:
        parsed = topics.parse(topic, "svc/v1")
    except topics.TopicError:
        return
    assert topics.NAME.fullmatch(parsed.site) and topics.NAME.fullmatch(parsed.device)
    assert topic == f"svc/v1/{parsed.site}/{parsed.device}/{parsed.kind}"
