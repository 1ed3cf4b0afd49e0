"""Scenarios and the plan they make: counts, score mix, fraud and faults, before any network."""

from __future__ import annotations

import collections
import re
import textwrap

import pytest

from simulator import plan, scenario
from simulator.scenario import REASONS, SCORES

HALL = """
name = "test-hall"
seed = 9

[time]
start = 2026-11-02
days = {days}
speed = 0

[hours]
open = "09:00"
close = "17:00"
closed_weekdays = [7]
curve = [1, 1, 1, 1, 1, 1, 1, 1]

[profiles.mixed]
scores = {{ 5 = 50, 4 = 20, 3 = 10, 2 = 10, 1 = 10 }}
reasons = {{ attitude = 3, efficiency = 1 }}
reason_share = 0.5

[[halls]]
site = "hall-{{n}}"
copies = 2
mode = "prompt"
counters = 3
profiles = ["mixed"]
participation = 0.75
customers_per_hour = 30
{extra}
"""


def make(tmp_path, days: int = 1, extra: str = "") -> scenario.Scenario:
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(HALL.format(days=days, extra=extra)))
    return scenario.load(path)


def test_every_shipped_scenario_loads_and_plans_its_first_day():
    assert {"small-hall", "city-hall", "city-month", "fault-drill"} <= set(scenario.names())
    for name in scenario.names():
        loaded = scenario.load(name)
        assert plan.day(loaded, 1), name


def test_customers_participation_scores_and_reasons_follow_the_scenario(tmp_path):
    s = make(tmp_path, days=6)
    actions = [a for d in range(1, 7) for a in plan.day(s, d)]
    prompts = [a for a in actions if a.kind == "prompt"]
    presses = [a for a in actions if a.kind == "press"]
    reasons = [a for a in actions if a.kind == "reason"]
    # 30 an hour, none served in under 45 s: gaps of 45 + 120 e^(-45/120) = 127.5 s on
    # average, 28.2 customers an hour; 8 hours, 6 counters, 6 open days: about 8,130
    assert 7_800 < len(prompts) < 8_400
    assert abs(len(presses) / len(prompts) - 0.75) < 0.03
    mix = collections.Counter(SCORES[p.button] for p in presses)
    for score, weight in {5: 0.5, 4: 0.2, 3: 0.1, 2: 0.1, 1: 0.1}.items():
        assert abs(mix[score] / len(presses) - weight) < 0.03, (score, mix)
    poor = mix[1] + mix[2]
    assert abs(len(reasons) / poor - 0.5) < 0.06
    given = collections.Counter(REASONS[r.button] for r in reasons)
    assert set(given) == {"attitude", "efficiency"}
    assert abs(given["attitude"] / len(reasons) - 0.75) < 0.06
    for action in actions:  # everything within opening hours, local time UTC+8
        minute = (action.at_ms // 60_000 + 8 * 60) % (24 * 60)
        assert 9 * 60 <= minute < 17 * 60 + 1


def test_a_closed_day_has_no_customers_and_a_day_is_the_same_every_time(tmp_path):
    s = make(tmp_path, days=7)
    assert plan.day(s, 7) == []  # 2026-11-08 is a Sunday
    assert plan.day(s, 3) == plan.day(s, 3)
    assert plan.day(s, 3) != plan.day(s, 4)


def test_fraud_patterns_make_their_presses(tmp_path):
    extra = """
    [[fraud]]
    kind = "self_rating"
    site = "hall-1"
    counter = "02"
    at = "12:00"
    count = 7

    [[fraud]]
    kind = "burst"
    site = "hall-2"
    counter = "01"
    at = "10:00"
    count = 15

    [[fraud]]
    kind = "stuck_key"
    site = "hall-2"
    counter = "03"
    at = "11:00"
    seconds = 90
    """
    actions = plan.day(make(tmp_path, extra=textwrap.dedent(extra)), 1)
    by_cause = collections.defaultdict(list)
    for a in actions:
        by_cause[a.cause].append(a)
    own = by_cause["self_rating"]
    assert [a.kind for a in own] == ["prompt", "press"] * 7
    assert {(a.site, a.counter) for a in own} == {("hall-1", "02")}
    for prompt, press in zip(own[::2], own[1::2], strict=True):
        assert 200 <= press.at_ms - prompt.at_ms <= 450 and press.button == 0
    nobody_there = range(own[0].at_ms - 60_000, own[-1].at_ms + 60_001)
    assert not [
        a
        for a in by_cause["customer"]
        if (a.site, a.counter) == ("hall-1", "02") and a.at_ms in nobody_there
    ]
    burst = by_cause["burst"]
    assert len(burst) == 15 and all(a.kind == "press" for a in burst)
    assert burst[-1].at_ms - burst[0].at_ms < 15 * 1200
    stuck = by_cause["stuck_key"]
    assert [a.kind for a in stuck] == ["stuck", "unstuck"]
    assert stuck[1].at_ms - stuck[0].at_ms == 90_000


def test_faults_land_where_and_when_they_are_set(tmp_path):
    extra = """
    [[fault]]
    kind = "wifi_drop"
    site = "hall-1"
    at = "10:30"
    seconds = 120

    [[fault]]
    kind = "power_cut"
    site = "hall-2"
    counter = "03"
    at = "14:00"

    [[fault]]
    kind = "broker_restart"
    at = "15:00"
    seconds = 2
    """
    s = make(tmp_path, extra=textwrap.dedent(extra))
    faults = [a for a in plan.day(s, 1) if a.cause == "fault"]
    drops = [a for a in faults if a.kind == "wifi_drop"]
    assert {(a.site, a.counter) for a in drops} == {("hall-1", c) for c in ("01", "02", "03")}
    assert {a.seconds for a in drops} == {120}
    assert drops[0].at_ms == s.day_start_ms(1) + (10 * 60 + 30) * 60_000
    assert [(a.site, a.counter) for a in faults if a.kind == "power_cut"] == [("hall-2", "03")]
    assert [a.seconds for a in faults if a.kind == "broker_restart"] == [2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('mode = "prompt"', None),
        ('mode = "sometimes"', "halls[0].mode: prompt or free"),
        ('profiles = ["nobody"]', "halls[0].profiles"),
        ("participation = 1.5", "halls[0].participation: a number from 0 to 1"),
        ('site = "Hall {n}"', "breaks"),
    ],
)
def test_a_bad_scenario_is_refused_with_the_key_and_the_reason(tmp_path, change, message):
    text = textwrap.dedent(HALL.format(days=1, extra=""))
    key = change.split(" =")[0]
    lines = [change if line.startswith(f"{key} =") else line for line in text.splitlines()]
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines))
    if message is None:
        scenario.load(path)
        return
    with pytest.raises(scenario.ScenarioError, match=re.escape(message)):
        scenario.load(path)


def test_a_fault_at_a_hall_that_does_not_exist_is_refused(tmp_path):
    extra = '[[fault]]\nkind = "wifi_drop"\nsite = "elsewhere"\nat = "10:00"\n'
    with pytest.raises(scenario.ScenarioError, match="no hall 'elsewhere'"):
        make(tmp_path, extra=extra)
