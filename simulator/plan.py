"""What happens in the halls, day by day: prompts, presses, fraud and faults, in simulated time.

The plan is the same for fidelity and scale mode; a terminal turns its presses into ratings
the way the firmware does. Each counter's day draws from its own random stream, seeded by
the scenario's seed, the day and the counter, so a day is the same however the run is cut.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TypeVar

from firmware import contract
from simulator.roster import Roster
from simulator.scenario import REASONS, SCORES, Counter, Event, Hall, Profile, Scenario

K = TypeVar("K")

PRESS_DELAY_S = (1.0, 6.0)  # a customer presses this long after the prompt
REASON_DELAY_S = (1.0, 3.0)  # and gives the reason (or efficiency) this long after the score
EFFICIENCY_SHARE = 0.9  # in the aspect mode, the customers who answer the second question too
SELF_PRESS_S = (0.2, 0.45)  # a clerk rating themselves presses this fast
SELF_GAP_S = (20.0, 60.0)  # between two such ratings
BURST_GAP_S = (0.3, 1.2)  # between a child's presses
STUCK_BUTTON = 0  # the key that jams
SERVICE_MIN_S = 45.0  # no customer is served faster
QUIET_MS = 60_000  # around a clerk's rating of themselves, no customer at that counter
HANDOVER_BEFORE_S = 30.0  # beyond the window: no customer this close before a login or logout
HANDOVER_AFTER_S = 10.0  # nor this close after it, while the terminal takes its new config


@dataclass(frozen=True, order=True)
class Action:
    """One thing done to a terminal (or, for broker_restart, to the broker) at at_ms."""

    at_ms: int
    site: str
    counter: str
    # prompt, press, reason, aspect (the second), stuck, unstuck, login, wifi_drop, power_cut,
    # broker_restart
    kind: str
    button: int = -1  # press, reason, aspect: which button, 0 the first
    seconds: float = 0.0  # faults: how long
    cause: str = "customer"  # or the fraud: self_rating, burst, stuck_key; roster; fault
    staff: str | None = field(default=None, compare=False)  # login: who, None for nobody


def day(scenario: Scenario, number: int) -> list[Action]:
    """Every action of one day (1 = the first), in time order."""
    fraud = [a for e in scenario.frauds if e.day == number for a in _fraud(scenario, e)]
    roster = Roster(scenario)
    actions: list[Action] = []
    handovers: dict[tuple[str, str], list[int]] = {}
    for change in roster.changes(number):
        actions.append(
            Action(
                change.at_ms,
                change.site,
                change.counter,
                "login",
                cause="roster",
                staff=change.staff,
            )
        )
        handovers.setdefault((change.site, change.counter), []).append(change.at_ms)
    if scenario.is_open(number):
        for hall in scenario.halls:
            for counter in hall.counters:
                changes = handovers.get((counter.site, counter.counter), [])
                actions += _customers(scenario, hall, counter, number, roster, handovers=changes)
    actions = _clear_for_self_rating(actions, fraud) + fraud
    for event in scenario.faults:
        if event.day == number:
            actions += _fault(scenario, event)
    return sorted(actions)


def _clear_for_self_rating(customers: list[Action], fraud: list[Action]) -> list[Action]:
    """A clerk rates themselves when nobody is at the counter: no customer there meanwhile."""
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for a in fraud:
        if a.cause == "self_rating":
            first, last = spans.get((a.site, a.counter), (a.at_ms, a.at_ms))
            spans[(a.site, a.counter)] = (min(first, a.at_ms), max(last, a.at_ms))
    return [
        a
        for a in customers
        if not (
            (span := spans.get((a.site, a.counter)))
            and span[0] - QUIET_MS <= a.at_ms <= span[1] + QUIET_MS
        )
    ]


def _rng(scenario: Scenario, number: int, *where: str) -> random.Random:
    return random.Random("/".join([str(scenario.seed), str(number), *where]))


def _customers(
    scenario: Scenario,
    hall: Hall,
    counter: Counter,
    number: int,
    roster: Roster,
    *,
    handovers: list[int],
) -> list[Action]:
    """A Poisson stream of customers along the day's curve, each served, prompted and maybe
    pressing, with a reason after a poor score as the profile of the clerk logged in then (or
    the counter's, with nobody) has it. Nobody is served across a login or logout: every
    rating is then the clerk's who was logged in when it was pressed or its window closed."""
    rng = _rng(scenario, number, counter.site, counter.counter)
    midnight = scenario.day_start_ms(number)
    before = int((scenario.window_s + HANDOVER_BEFORE_S) * 1000)
    after = int(HANDOVER_AFTER_S * 1000)
    actions: list[Action] = []
    for hour, load in enumerate(scenario.curve):
        rate_per_s = hall.customers_per_hour * load / 3600
        begin = (scenario.open_min + 60 * hour) * 60.0
        end = min(begin + 3600, scenario.close_min * 60.0)
        t = begin + (rng.expovariate(rate_per_s) if rate_per_s else 3600.0)
        while t < end:
            at = midnight + int(t * 1000)
            served: list[Action] = []
            if hall.mode == "prompt":
                served.append(Action(at, counter.site, counter.counter, "prompt"))
            if rng.random() < hall.participation:
                stint = roster.stint_at(counter.site, counter.counter, at)
                profile = scenario.profiles[stint.clerk.profile if stint else counter.profile]
                served += _press(rng, profile, counter, at, hall)
            i = bisect_left(handovers, at - after)
            if i == len(handovers) or handovers[i] > at + before:
                actions += served
            t += max(SERVICE_MIN_S, rng.expovariate(rate_per_s))
    return actions


def _press(
    rng: random.Random, profile: Profile, counter: Counter, prompted_at: int, hall: Hall
) -> list[Action]:
    """A customer's presses: the score and maybe a reason, or in the aspect mode attitude and
    (most of the time) efficiency."""
    if hall.aspects:
        scores = [_draw(rng, profile.aspects[a]) for a in contract.ASPECTS]
    else:
        scores = [_draw(rng, profile.scores)]
    delay = rng.uniform(*PRESS_DELAY_S) if hall.mode == "prompt" else 0.0
    at = prompted_at + int(delay * 1000)
    where = (counter.site, counter.counter)
    found = [Action(at, *where, "press", SCORES.index(scores[0]))]
    if hall.aspects:
        if rng.random() < EFFICIENCY_SHARE:
            later = at + int(rng.uniform(*REASON_DELAY_S) * 1000)
            found.append(Action(later, *where, "aspect", SCORES.index(scores[1])))
    elif scores[0] <= contract.POOR_MAX and rng.random() < profile.reason_share:
        reason = _draw(rng, profile.reasons)
        later = at + int(rng.uniform(*REASON_DELAY_S) * 1000)
        found.append(Action(later, *where, "reason", REASONS.index(reason)))
    return found


def _draw(rng: random.Random, weights: dict[K, float]) -> K:
    """One key, with the chance its weight gives it."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _places(scenario: Scenario, event: Event) -> list[tuple[Hall, Counter]]:
    return [
        (hall, counter)
        for hall in scenario.halls
        if event.site in (None, hall.site)
        for counter in hall.counters
        if event.counter in (None, counter.counter)
    ]


def _fraud(scenario: Scenario, event: Event) -> list[Action]:
    actions: list[Action] = []
    for hall, counter in _places(scenario, event):
        rng = _rng(scenario, event.day, counter.site, counter.counter, event.kind)
        at = scenario.day_start_ms(event.day) + event.at_min * 60_000
        where = (counter.site, counter.counter)
        if event.kind == "stuck_key":
            actions.append(Action(at, *where, "stuck", STUCK_BUTTON, cause="stuck_key"))
            end = at + int(event.seconds * 1000)
            actions.append(Action(end, *where, "unstuck", STUCK_BUTTON, cause="stuck_key"))
            continue
        for _ in range(event.count):
            if event.kind == "self_rating":  # the clerk opens a window and rates at once
                if hall.mode == "prompt":
                    actions.append(Action(at, *where, "prompt", cause="self_rating"))
                press = at + int(rng.uniform(*SELF_PRESS_S) * 1000)
                actions.append(Action(press, *where, "press", 0, cause="self_rating"))
                at = press + int(rng.uniform(*SELF_GAP_S) * 1000)
            else:  # burst: a child, or a jammed key, pressing again and again
                actions.append(Action(at, *where, "press", rng.randrange(5), cause="burst"))
                at += int(rng.uniform(*BURST_GAP_S) * 1000)
    return actions


def _fault(scenario: Scenario, event: Event) -> list[Action]:
    at = scenario.day_start_ms(event.day) + event.at_min * 60_000
    if event.kind == "broker_restart":
        return [Action(at, "", "", "broker_restart", seconds=event.seconds, cause="fault")]
    return [
        Action(at, counter.site, counter.counter, event.kind, seconds=event.seconds, cause="fault")
        for _hall, counter in _places(scenario, event)
    ]
