"""The roster: clerks on shifts, days off and moving counters, set through the retained config."""

from __future__ import annotations

import itertools
import textwrap
from collections import Counter, defaultdict

import pytest

from simulator import plan, scenario, truth
from simulator.roster import Roster
from tests.test_simulator_scale import load, play, settled

ROSTER = textwrap.dedent("""
    clerks = [
      { staff = "A1", name = "张敏", profile = "kind", shifts = ["09:00-10:00"] },
      { staff = "B2", name = "李娜", profile = "rude", shifts = ["09:00-09:30"], days_off = [2] },
      { staff = "C3", name = "王强", profile = "kind", shifts = ["09:30-10:00"] },
    ]
    """)

TWO_PROFILES = """
name = "roster-test"
seed = 8

[time]
start = 2026-11-02
days = 3
speed = 0
telemetry_s = 1

[hours]
open = "09:00"
close = "10:00"
curve = [1]

[profiles.kind]
scores = {{ 5 = 1 }}
reasons = {{ other = 1 }}

[profiles.rude]
scores = {{ 1 = 1 }}
reasons = {{ attitude = 1 }}

[profiles.plain]
scores = {{ 3 = 1 }}
reasons = {{ other = 1 }}

[[halls]]
site = "{site}"
mode = "prompt"
counters = {counters}
profiles = ["plain"]
participation = 1.0
customers_per_hour = 60
{extra}
"""


def test_clerks_move_between_counters_and_never_share_one(tmp_path):
    s = scenario.load("city-month")
    roster = Roster(s)
    seats: dict[str, set[str]] = defaultdict(set)
    for number in range(1, s.days + 1):
        weekday = (s.start.toordinal() + number - 1) % 7 or 7
        for (site, counter), stints in roster.day(number).items():
            for a, b in itertools.pairwise(stints):
                assert a.end_ms <= b.start_ms, f"{site}/{counter} double-booked on day {number}"
            for stint in stints:
                assert weekday not in stint.clerk.days_off
                seats[stint.clerk.staff].add(counter)
        if not s.is_open(number):
            assert not roster.day(number)
    assert sum(len(counters) > 1 for counters in seats.values()) > len(seats) * 0.9
    # on the first Monday a city hall has a counter nobody logs in at
    monday = roster.day(1)
    assert any(not monday.get(("city-hall-01", f"{c:02d}")) for c in range(1, 7))


def test_logins_are_changes_and_customers_keep_clear_of_them(tmp_path):
    s = load(tmp_path, counters=2, extra=ROSTER, text=TWO_PROFILES)
    site = s.halls[0].site
    actions = plan.day(s, 1)
    logins = [(a.at_ms, a.counter, a.staff) for a in actions if a.kind == "login"]
    at = {minutes: s.day_start_ms(1) + minutes * 60_000 for minutes in (540, 570, 600)}
    seat = {staff: counter for _, counter, staff in logins if staff}
    # A1 and B2 from 09:00; at 09:30 C3 takes the counter B2 leaves (one change, not two)
    assert sorted(logins, key=str) == sorted(
        [
            (at[540], seat["A1"], "A1"),
            (at[540], seat["B2"], "B2"),
            (at[570], seat["B2"], "C3"),
            (at[600], seat["A1"], None),
            (at[600], seat["B2"], None),
        ],
        key=str,
    )
    assert seat["C3"] == seat["B2"] != seat["A1"]
    roster = Roster(s)
    guard_before = (s.window_s + plan.HANDOVER_BEFORE_S) * 1000
    for a in actions:
        if a.kind == "prompt":
            near = [at for at, c, _ in logins if c == a.counter and at - guard_before <= a.at_ms]
            assert all(a.at_ms > at + plan.HANDOVER_AFTER_S * 1000 for at in near)
        if a.kind == "press":  # the clerk's profile decides the score
            staff = roster.staff_at(site, a.counter, a.at_ms)
            score = scenario.SCORES[a.button]
            assert score == {"A1": 5, "C3": 5, "B2": 1, None: 3}[staff]


def test_bad_rosters_are_refused_with_the_key(tmp_path):
    cases = {
        'clerks = [{ staff = "A 1", profile = "kind", shifts = ["09:00-10:00"] }]': "staff",
        'clerks = [{ staff = "A1", profile = "nope", shifts = ["09:00-10:00"] }]': "profile",
        'clerks = [{ staff = "A1", profile = "kind", shifts = ["10:00-09:00"] }]': "ends before",
        'clerks = [{ staff = "A1", profile = "kind", shifts = ["09:00-10:00", "09:30-11:00"] }]': (
            "overlap"
        ),
        'clerks = [{ staff = "A1", profile = "kind", shifts = ["09:00-10:00"] },'
        ' { staff = "A1", profile = "kind", shifts = ["09:00-10:00"] }]': "once",
    }
    for extra, why in cases.items():
        with pytest.raises(scenario.ScenarioError, match=why):
            load(tmp_path, extra=extra, text=TWO_PROFILES)


def test_terminals_take_their_clerk_from_the_retained_config(
    mosquitto, influxdb, collector, topic_root, database, tmp_path
):
    s = load(tmp_path, counters=3, extra=ROSTER, text=TWO_PROFILES)
    truth_path = tmp_path / "truth.jsonl"
    play(s, mosquitto.port, topic_root, truth_path)
    sent = truth.read(truth_path)
    assert len(sent) > 150
    # whose rating each one was: the roster's clerk at press time, on the wire and stored
    assert all(r["staff"] == r["clerk"] for r in sent)
    by_staff = Counter(r["staff"] for r in sent)
    assert set(by_staff) == {"A1", "B2", "C3", None}  # a counter nobody logged in at
    # B2 is off on Tuesday: its counter had C3 only from 09:30
    tuesday = s.day_start_ms(2)
    assert not [r for r in sent if r["staff"] == "B2" and tuesday <= r["ts"] < tuesday + 86_400_000]
    reports = settled(truth_path, influxdb, database)
    assert sum(r.differences for r in reports) == 0
    stored = influxdb.query('SELECT count("rated") FROM rating GROUP BY "staff"', db=database)
    assert {row.get("staff") or None: row["count"] for row in stored} == dict(by_staff)
