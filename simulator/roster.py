"""Who sits at which counter, day by day: a hall's clerks placed on its counters.

Each open day, the clerks not off that day are taken in an order drawn for the day (so they
move between counters from day to day), and each is given the first counter free for all of
their shifts. A counter nobody holds has nobody logged in (`staff` null); a clerk who finds
no free counter works elsewhere in the hall that day. A clerk logs in at a shift's start and
out at its end, the way a hall sets its terminals: through the retained `config` topic.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from simulator.scenario import Clerk, Hall, Scenario


@dataclass(frozen=True)
class Stint:
    """One clerk logged in at one counter, from start_ms to end_ms (Unix ms)."""

    site: str
    counter: str
    start_ms: int
    end_ms: int
    clerk: Clerk


@dataclass(frozen=True)
class Change:
    """At at_ms, staff logs in at a counter (None: whoever was there logs out)."""

    at_ms: int
    site: str
    counter: str
    staff: str | None


class Roster:
    """The scenario's stints, worked out per day when first asked for."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._halls = {hall.site: hall for hall in scenario.halls}
        self._day_of_ms = [scenario.day_start_ms(d) for d in range(1, scenario.days + 2)]
        self.day = lru_cache(maxsize=4)(self._day)

    def names(self) -> dict[tuple[str, str], str]:
        """Each clerk's name by (site, staff)."""
        return {(h.site, c.staff): c.name for h in self.scenario.halls for c in h.clerks}

    def staff_at(self, site: str, counter: str, at_ms: int) -> str | None:
        """Who was logged in at that counter then: the roster's clerk, or for a hall without
        a roster the counter's own; None for nobody."""
        hall = self._halls[site]
        if not hall.clerks:
            return next(c.staff for c in hall.counters if c.counter == counter)
        stint = self.stint_at(site, counter, at_ms)
        return None if stint is None else stint.clerk.staff

    def attributed(self, rating: dict[str, Any]) -> dict[str, Any]:
        """A ground-truth record with `clerk`: whom the roster had at the rating's counter when
        it was pressed or its window closed (unknown without a ts)."""
        ts = rating.get("ts")
        clerk = None if ts is None else self.staff_at(rating["site"], rating["counter"], ts)
        return {**rating, "clerk": clerk}

    def stint_at(self, site: str, counter: str, at_ms: int) -> Stint | None:
        number = bisect_right(self._day_of_ms, at_ms)
        if not 1 <= number <= self.scenario.days:
            return None
        for stint in self.day(number).get((site, counter), ()):
            if stint.start_ms <= at_ms < stint.end_ms:
                return stint
        return None

    def changes(self, number: int) -> list[Change]:
        """The day's logins and logouts, in time order. A clerk who takes over a counter the
        moment another leaves it makes one change."""
        found: list[Change] = []
        for (site, counter), stints in self.day(number).items():
            ends: set[int] = set()
            for stint in stints:
                ends.discard(stint.start_ms)
                found.append(Change(stint.start_ms, site, counter, stint.clerk.staff))
                ends.add(stint.end_ms)
            found += [Change(at, site, counter, None) for at in ends]
        return sorted(found, key=lambda c: (c.at_ms, c.site, c.counter))

    def _day(self, number: int) -> dict[tuple[str, str], list[Stint]]:
        found: dict[tuple[str, str], list[Stint]] = {}
        if not self.scenario.is_open(number):
            return found
        for hall in self.scenario.halls:
            for stint in self._place(hall, number):
                found.setdefault((hall.site, stint.counter), []).append(stint)
        for stints in found.values():
            stints.sort(key=lambda s: s.start_ms)
        return found

    def _place(self, hall: Hall, number: int) -> list[Stint]:
        s = self.scenario
        weekday = (s.start.isoweekday() + number - 2) % 7 + 1
        clerks = [c for c in hall.clerks if weekday not in c.days_off]
        random.Random(f"{s.seed}/{number}/{hall.site}/roster").shuffle(clerks)
        held: dict[str, list[tuple[int, int]]] = {c.counter: [] for c in hall.counters}
        midnight = s.day_start_ms(number)
        stints = []
        for clerk in clerks:
            for counter, spans in held.items():
                if not any(a < end and start < b for a, b in spans for start, end in clerk.shifts):
                    spans.extend(clerk.shifts)
                    stints += [
                        Stint(
                            hall.site,
                            counter,
                            midnight + start * 60_000,
                            midnight + end * 60_000,
                            clerk,
                        )
                        for start, end in clerk.shifts
                    ]
                    break
        return stints
