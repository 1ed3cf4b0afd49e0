"""One contract, one table: the terminal's side and the collector's agree on every value.

The table holds valid and invalid values of each rule. Each row goes through the firmware's
own code, under CPython and under the MicroPython Unix port (tests/mpy/conformance.py), and
through the collector's checks; a property test then shows that whatever config and prompt a
terminal accepts yields ratings the collector stores.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from collector import rating as collector_rating
from collector import topics
from collector.checks import Rejected
from collector.topics import DeviceTopic
from firmware import contract
from fwtools.unix_port import FIRMWARE_DIR, firmware_module, run_script

config_fw = firmware_module("config")
flow_fw = firmware_module("flow")
outbox_fw = firmware_module("outbox")
protocol_fw = firmware_module("protocol")
contract_fw = firmware_module("contract")  # the same file as the terminal imports it

WHERE = DeviceTopic("sjz-yuhua", "ev-a1b2c3d4e5f6", "rating")

# (kind, value, valid)
NAMES: list[tuple[str, Any, bool]] = [
    ("site", "sjz-yuhua", True),
    ("site", "a", True),
    ("site", "9" * 32, True),
    ("site", "9" * 33, False),
    ("site", "-a", False),
    ("site", "A", False),
    ("site", "", False),
    ("site", "a_b", False),
    ("site", "营业厅", False),
    ("site", None, False),
    ("device", "ev-a1b2c3d4e5f6", True),
    ("device", "ev-", True),
    ("device", "ev a", False),
    ("device", "ev/a", False),
    ("counter", "03", True),
    ("counter", "A-1", True),
    ("counter", "-", True),
    ("counter", "12345678", True),
    ("counter", "123456789", False),
    ("counter", "03 ", False),
    ("counter", "0_3", False),
    ("counter", "", False),
    ("counter", 3, False),
    ("staff", "E1023", True),
    ("staff", "e_1-2", True),
    ("staff", "x" * 16, True),
    ("staff", "x" * 17, False),
    ("staff", "E 1023", False),
    ("staff", "E-1023!", False),
    ("staff", "工号", False),
    ("staff", "", False),
    ("staff", 1023, False),
]

# (config key, value, valid)
CONFIG: list[tuple[str, Any, bool]] = [
    ("counter", None, True),
    ("staff", None, True),
    ("staff_name", "张敏", True),
    ("staff_name", "x" * 32, True),
    ("staff_name", "x" * 33, False),
    ("staff_name", 7, False),
    ("mode", "prompt", True),
    ("mode", "free", True),
    ("mode", "always", False),
    ("window_s", 3, True),
    ("window_s", 120, True),
    ("window_s", 2, False),
    ("window_s", 121, False),
    ("window_s", "10", False),
    ("window_s", True, False),
    ("window_s", 10.5, False),
    ("telemetry_s", 5, True),
    ("telemetry_s", 3600, True),
    ("telemetry_s", 4, False),
    ("lockout_s", 0, True),
    ("lockout_s", 60, True),
    ("lockout_s", -1, False),
    ("buttons", [5, 4, 3], True),
    ("buttons", [5, 4, 3, 2, 1], True),
    ("buttons", [1, 1, 1, 1], True),
    ("buttons", [5, 4], False),
    ("buttons", [5, 4, 3, 2, 1, 1], False),
    ("buttons", [5, 4, 6], False),
    ("buttons", [5, 4, 0], False),
    ("buttons", [5, 4, True], False),
    ("buttons", "5,4,3", False),
    ("ask_reason", True, True),
    ("ask_reason", 1, False),
    ("aspects", True, True),
    ("aspects", False, True),
    ("aspects", "yes", False),
    ("aspects", 1, False),
] + [(kind, value, ok) for kind, value, ok in NAMES if kind in ("counter", "staff")]

# (a prompt's ticket, the ticket the rating carries)
TICKETS: list[tuple[Any, str | None]] = [
    ("A023", "A023"),
    ("A\t023\n", "A 023"),
    ("Q" * 40, "Q" * 32),
    ("票号-七", "票号-七"),
    ("\x00\x1f", None),
    ("A\ud83d\ude00", "A\U0001f600"),  # as MicroPython reads "\\ud83d\\ude00": two surrogates
    ("\ud800", "\ufffd"),  # a surrogate alone, which no UTF-8 carries
    ("\udc00B\ud800", "\ufffdB\ufffd"),
    (" " * 4000 + "C ", "C"),
    ("  ", None),
    ("", None),
    (None, None),
    (7, None),
    (["A1"], None),
    ({"n": 1}, None),
    (True, None),
]

# (a rating's aspects, valid)
ASPECTS: list[tuple[Any, bool]] = [
    ({"attitude": 5, "efficiency": 4}, True),
    ({"attitude": 1, "efficiency": None}, True),
    ({"attitude": None, "efficiency": None}, True),
    ({"attitude": 5}, False),
    ({"attitude": 5, "efficiency": 4, "expertise": 3}, False),
    ({"attitude": 5, "expertise": 3}, False),  # a crash of the collector's check, once
    ({"attitude": 6, "efficiency": 4}, False),
    ({"attitude": 0, "efficiency": 4}, False),
    ({"attitude": True, "efficiency": 4}, False),
    ({"attitude": "5", "efficiency": 4}, False),
    ({"attitude": 4.0, "efficiency": 4}, False),
    ([5, 4], False),
    ("5,4", False),
]

TABLE = {
    "names": NAMES,
    "config": CONFIG,
    "tickets": TICKETS,
    "aspects": ASPECTS,
    "ratings": [
        (counter, staff, ticket, aspects)
        for counter, staff in (("03", "E1023"), (None, None), ("12345678", "x" * 16))
        for ticket, _ in TICKETS
        for aspects in (False, True)
    ],
}


def config_takes(key: str, value: Any) -> bool:
    try:
        config_fw.changes({key: value})
    except config_fw.ConfigError:
        return False
    return True


def rating_message(counter: str | None, staff: str | None, ticket: Any, aspects: bool) -> bytes:
    """The terminal's path under CPython: prompt, two presses (the second rates efficiency in
    the aspect mode, and is a repeat otherwise), flash record, wire encoding."""
    flow = flow_fw.RatingFlow({**config_fw.DEFAULTS, "aspects": aspects}, 0)
    flow.prompt(0, contract_fw.clean_ticket(ticket))
    events = flow.press(1, 1830) + flow.press(3, 2500)
    [record] = [e[1] for e in events if e[0] == "rating"]
    record.update(seq=1042, boot=17, ts=1795347568123, counter=counter, staff=staff)
    fields = outbox_fw.decode(outbox_fw.encode(record))
    fields.pop("at")
    return bytes(protocol_fw.encode(contract_fw.rating(**fields)))


def collector_takes_name(kind: str, value: Any) -> bool:
    """The collector's check of a name: in a topic (site, device) or a rating (counter, staff)."""
    if kind in ("site", "device"):
        if not isinstance(value, str):
            return False
        names = {"site": "sjz-yuhua", "device": "ev-1", kind: value}
        try:
            topics.parse(f"svc/v1/{names['site']}/{names['device']}/rating", "svc/v1")
        except topics.TopicError:
            return False
        return True
    message = {**contract.rating(1, 0, 1795347568123, 4, None, None, None, None, "free", None)}
    message[kind] = value
    try:
        collector_rating.parse(WHERE, json.dumps(message).encode())
    except Rejected:
        return False
    return True


@pytest.mark.parametrize(("kind", "value", "valid"), NAMES)
def test_names_alike_on_both_sides(kind, value, valid):
    assert contract.valid_name(kind, value) is valid
    assert collector_takes_name(kind, value) is valid
    if kind in ("counter", "staff"):
        assert config_takes(kind, value) is valid
    if isinstance(value, str):  # the rule's regular expression says the same
        assert bool(re.fullmatch(contract.name_pattern(kind), value)) is valid


@pytest.mark.parametrize(("key", "value", "valid"), CONFIG)
def test_config_fields_are_taken_or_refused_as_the_table_says(key, value, valid):
    assert config_takes(key, value) is valid


@pytest.mark.parametrize(("ticket", "carried"), TICKETS)
def test_any_ticket_opens_a_window_and_the_rating_is_stored(ticket, carried):
    assert contract.clean_ticket(ticket) == carried
    for counter, staff in (("03", "E1023"), (None, None)):
        parsed = collector_rating.parse(WHERE, rating_message(counter, staff, ticket, False))
        assert (parsed.ticket, parsed.counter, parsed.staff, parsed.score) == (
            carried,
            counter,
            staff,
            4,
        )


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(st.characters() | st.characters(categories=["Cs"])))
def test_any_ticket_text_becomes_one_the_collector_stores_or_none(ticket):
    """Whatever text a prompt's ticket is, the rating it ends up in is one the collector takes
    (valid_ticket, and strict UTF-8 JSON: a surrogate alone is not)."""
    cleaned = contract.clean_ticket(ticket)
    message = contract.rating(1, 0, 1795347568123, 4, None, None, None, cleaned, "prompt", 9)
    encoded = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert collector_rating.parse(WHERE, encoded).ticket == cleaned


@pytest.mark.parametrize(("aspects", "valid"), ASPECTS)
def test_aspects_alike_on_both_sides(aspects, valid):
    assert contract.valid_aspects(aspects) is valid
    score, reason = contract.aspects_overall(aspects) if valid else (4, None)
    message = {
        **contract.rating(1, 0, 1795347568123, score, reason, None, None, None, "free", None)
    }
    message["aspects"] = aspects
    try:
        collector_rating.parse(WHERE, json.dumps(message).encode())
        taken = True
    except Rejected:
        taken = False
    assert taken is valid


def test_an_aspect_rating_stores_each_aspect_and_follows_them_in_score_and_reason():
    parsed = collector_rating.parse(WHERE, rating_message("03", "E1023", "A1", True))
    assert parsed.aspects == {"attitude": 4, "efficiency": 2}
    assert (parsed.score, parsed.reason) == (2, "efficiency")
    point = parsed.point(1795347568200)
    assert ",attitude=4i,efficiency=2i," in point and ",reason=efficiency," in point
    made_up = json.loads(rating_message("03", "E1023", "A1", True))
    made_up["score"] = 4  # a forged or broken terminal's overall score, against its aspects
    with pytest.raises(Rejected) as refused:
        collector_rating.parse(WHERE, json.dumps(made_up).encode())
    assert refused.value.kind == "contradiction"


def test_micropython_runs_the_table_alike(micropython, tmp_path):
    """The terminal's code under the MicroPython Unix port finds what CPython finds, and the
    collector takes every message it encodes."""
    table = tmp_path / "table.json"
    table.write_text(json.dumps(TABLE))
    result = run_script(FIRMWARE_DIR.parent / "tests" / "mpy" / "conformance.py", str(table))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["names"] == [valid for _, _, valid in NAMES]
    assert found["config"] == [valid for _, _, valid in CONFIG]
    assert found["tickets"] == [carried for _, carried in TICKETS]
    assert found["aspects"] == [valid for _, valid in ASPECTS]
    for message, row in zip(found["messages"], TABLE["ratings"], strict=True):
        # the same message (MicroPython's dicts keep no insertion order, so not the same bytes)
        assert json.loads(message) == json.loads(rating_message(*row))
        collector_rating.parse(WHERE, message.encode())


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
)
NAMEISH = st.one_of(
    st.from_regex(contract.name_pattern("staff"), fullmatch=True), st.text(max_size=20), ANY_JSON
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(
    config=st.fixed_dictionaries(
        {},
        optional={
            "counter": NAMEISH,
            "staff": NAMEISH,
            "mode": st.sampled_from(["prompt", "free"]) | ANY_JSON,
            "buttons": st.lists(st.integers(0, 6), min_size=2, max_size=6) | ANY_JSON,
            "ask_reason": ANY_JSON,
            "window_s": st.integers(0, 200) | ANY_JSON,
            "lockout_s": st.integers(-1, 70) | ANY_JSON,
            "aspects": st.booleans() | ANY_JSON,
        },
    ),
    prompt=st.dictionaries(st.sampled_from(["v", "ticket"]), ANY_JSON) | ANY_JSON,
    presses=st.lists(st.integers(0, 5), min_size=1, max_size=4),
)
def test_whatever_a_terminal_accepts_yields_ratings_the_collector_stores(config, prompt, presses):
    """Any config the terminal takes and any prompt it acts on: every rating it then makes
    passes the collector's checks and becomes a point."""
    current = config_fw.Config(None, {})
    with contextlib.suppress(config_fw.ConfigError):  # refused whole, as on the wire
        current.apply(config)
    flow = flow_fw.RatingFlow(current, 0)
    events = []
    if isinstance(prompt, dict):  # what the uplink hands the flow (others are rejected)
        events += flow.prompt(0, contract_fw.clean_ticket(prompt.get("ticket")))
    now = 0
    for button in presses:
        now += 700
        events += flow.press(button, now)
    events += flow.tick(now + 200_000)
    for seq, record in enumerate((e[1] for e in events if e[0] == "rating"), start=1):
        record.update(
            seq=seq, boot=0, ts=1795347568123, counter=current["counter"], staff=current["staff"]
        )
        fields = outbox_fw.decode(outbox_fw.encode(record))
        fields.pop("at")
        parsed = collector_rating.parse(WHERE, protocol_fw.encode(contract_fw.rating(**fields)))
        assert parsed.point(1795347568200).startswith("rating,")
