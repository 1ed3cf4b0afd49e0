"""Suspect-rating rules and alert rules, on ratings made to order."""

from __future__ import annotations

import dataclasses
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.alerts import AlertRules, DeviceAlerts, DeviceRule, TrendRule
from collector.device import DeviceReport
from collector.rating import Rating
from collector.suspect import SuspectJudge
from collector.topics import DeviceTopic

BASE = Rating(
    site="sjz-yuhua",
    device="ev-1",
    seq=1,
    boot=0,
    ts=1_795_347_568_123,
    score=4,
    reason=None,
    counter="03",
    staff="E1023",
    ticket=None,
    mode="prompt",
    wait_ms=1830,
)


def rating(**changes) -> Rating:
    return dataclasses.replace(BASE, **changes)


def test_an_ordinary_rating_is_not_suspect():
    assert SuspectJudge().judge(BASE) is None


@pytest.mark.parametrize(
    ("changes", "why"),
    [({"wait_ms": 120}, "fast_press"), ({"wait_ms": None}, "no_window")],
)
def test_presses_too_fast_or_too_late_in_a_window_are_flagged(changes, why):
    assert SuspectJudge().judge(rating(**changes)) == why


def test_skipped_and_free_mode_ratings_have_no_window_rules():
    judge = SuspectJudge()
    assert judge.judge(rating(score=None, wait_ms=None)) is None
    assert judge.judge(rating(mode="free", wait_ms=None)) is None


def test_a_burst_from_one_terminal():
    judge = SuspectJudge()
    verdicts = [
        judge.judge(rating(seq=n, ts=BASE.ts + n * 4000, mode="free", wait_ms=None))
        for n in range(1, 7)
    ]
    assert verdicts == [None, None, None, None, "burst", "burst"]
    other = rating(device="ev-2", seq=9, ts=BASE.ts + 20_000)
    assert judge.judge(other) is None  # another terminal has its own history


def test_presses_at_machine_regular_intervals_are_flagged():
    judge = SuspectJudge()
    verdicts = [judge.judge(rating(seq=n, ts=BASE.ts + n * 61_000)) for n in range(1, 9)]
    assert verdicts[:6] == [None] * 6 and verdicts[6:] == ["regular", "regular"]


def test_human_intervals_are_not_regular():
    judge = SuspectJudge()
    gaps = [61_000, 95_000, 40_000, 180_000, 75_000, 66_000, 120_000, 50_000]
    t = BASE.ts
    for n, gap in enumerate(gaps, start=1):
        t += gap
        assert judge.judge(rating(seq=n, ts=t)) is None


def test_a_copy_is_judged_as_the_original():
    judge = SuspectJudge()
    for n in range(1, 6):
        judge.judge(rating(seq=n, ts=BASE.ts + n * 1000, mode="free", wait_ms=None))
    first = rating(seq=1, ts=BASE.ts + 1000, mode="free", wait_ms=None)
    assert judge.judge(first) is None  # four later presses do not make the first a burst


def kinds(alerts):
    return [a["kind"] for a in alerts]


def test_every_poor_rating_alerts_once():
    rules = AlertRules(TrendRule())
    poor = rating(score=1, reason="attitude", seq=7)
    [alert] = rules.on_rating(poor)
    assert alert == {
        "v": 1,
        "kind": "poor_rating",
        "site": "sjz-yuhua",
        "device": "ev-1",
        "counter": "03",
        "staff": "E1023",
        "score": 1,
        "reason": "attitude",
        "ts": BASE.ts,
        "seq": 7,
    }
    assert rules.on_rating(poor) == []  # the same rating again
    assert rules.on_rating(rating(score=4, seq=8)) == []


def test_a_trend_fires_once_then_rearms():
    rules = AlertRules(TrendRule(window_s=900, minimum=4, share=0.5))
    scores = [5, 1, 4, 2]  # 4 ratings, half unhappy
    found = []
    for n, score in enumerate(scores, start=1):
        found += rules.on_rating(rating(seq=n, score=score, ts=BASE.ts + n * 60_000))
    assert kinds(found) == ["poor_rating", "poor_rating", "trend"]
    assert found[-1]["ratings"] == 4 and found[-1]["unhappy"] == 2
    more = rules.on_rating(rating(seq=5, score=1, ts=BASE.ts + 5 * 60_000))
    assert kinds(more) == ["poor_rating"]  # still firing: not again
    for n in range(6, 10):  # happy customers clear it
        rules.on_rating(rating(seq=n, score=5, ts=BASE.ts + n * 60_000))
    late = []
    for n in range(10, 16):
        late += rules.on_rating(rating(seq=n, score=1, ts=BASE.ts + n * 60_000))
    assert "trend" in kinds(late)


def test_old_ratings_leave_the_trend_window():
    rules = AlertRules(TrendRule(window_s=900, minimum=4, share=0.5))
    found = []
    for n, score in enumerate([1, 1, 5, 5], start=1):  # 20 minutes apart
        found += rules.on_rating(rating(seq=n, score=score, ts=BASE.ts + n * 1_200_000))
    assert "trend" not in kinds(found)


def test_counters_have_their_own_trends():
    rules = AlertRules(TrendRule(minimum=4))
    found = []
    for n in range(1, 5):
        counter = "01" if n % 2 else "02"
        found += rules.on_rating(rating(seq=n, score=1, counter=counter, ts=BASE.ts + n))
    assert "trend" not in kinds(found)


def report(at_s: float, **fields) -> DeviceReport:
    where = DeviceTopic("sjz-yuhua", "ev-1", "telemetry")
    return DeviceReport(where, fields, int(at_s * 1e9))


def problems(alerts):
    return [a["problem"] for a in alerts]


def test_offline_for_long_enough_alerts_once_until_back():
    alerts = DeviceAlerts(DeviceRule(offline_s=300, queue_min=50))
    assert alerts.on_report(report(1000, online=0)) == []
    assert alerts.due(1000_000 + 299_000) == []
    [alert] = alerts.due(1000_000 + 300_000)
    assert (alert["kind"], alert["problem"], alert["since"], alert["device"]) == (
        "device",
        "offline",
        1000_000,
        "ev-1",
    )
    assert alerts.due(1000_000 + 900_000) == []
    alerts.on_report(report(2000, online=1))
    alerts.on_report(report(3000, online=0))
    assert problems(alerts.due(3000_000 + 300_000)) == ["offline"]


def test_stuck_key_alerts_once_until_released():
    alerts = DeviceAlerts(DeviceRule())
    assert problems(alerts.on_report(report(1, stuck_keys=1))) == ["stuck_key"]
    assert alerts.on_report(report(2, stuck_keys=1)) == []
    assert alerts.on_report(report(3, stuck_keys=0)) == []
    assert problems(alerts.on_report(report(4, stuck_keys=2))) == ["stuck_key"]


def test_a_growing_queue_alerts_once_until_it_empties():
    alerts = DeviceAlerts(DeviceRule(queue_min=50))
    queues = [10, 60, 80, 120, 70, 90, 0, 55, 65]
    found = [problems(alerts.on_report(report(n, queue=q))) for n, q in enumerate(queues)]
    assert found == [[], ["queue_growing"], [], [], [], [], [], ["queue_growing"], []]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(10_000, 3_600_000),  # over 7.5 s: no burst of 5 within 30 s
    st.lists(st.floats(-0.06, 0.06), min_size=6, max_size=6),
)
def test_the_quick_check_never_spares_a_machine(base_gap, wobble):
    """`regular` as docs/domain.md words it, the full test alone, against the judge's two-step
    one."""
    gaps = [round(base_gap * (1 + w)) for w in wobble]
    mean = statistics.fmean(gaps)
    expected = "regular" if statistics.pstdev(gaps) / mean < 0.02 else None
    judge, ts = SuspectJudge(), BASE.ts
    for seq, gap in enumerate([0, *gaps], start=1):
        ts += gap
        why = judge.judge(rating(seq=seq, ts=ts, wait_ms=None, mode="free"))
    assert why == expected
