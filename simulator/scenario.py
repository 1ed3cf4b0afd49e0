"""A scenario: halls, their counters and clerks, customers over the day, fraud and faults.

Scenarios are TOML files (simulator/scenarios/*.toml); load() checks one whole and says
what is wrong with it, key by key. Times of day are local to the halls (utc_offset_h).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware import contract

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
NAME = re.compile(contract.name_pattern("site"))
STAFF = re.compile(contract.name_pattern("staff"))
SCORES = contract.DEFAULT_BUTTONS  # the terminals' buttons, left to right
REASONS = contract.REASONS
FRAUDS = ("self_rating", "burst", "stuck_key")
FAULTS = ("wifi_drop", "power_cut", "broker_restart")


class ScenarioError(ValueError):
    """The scenario file is not usable; the text names the key and what is wrong."""


@dataclass(frozen=True)
class Profile:
    """How a clerk's customers score: weights per score, and for poor ones, per reason; in
    the aspect mode, weights per score of each aspect (each the scores' unless given)."""

    scores: dict[int, float]
    reasons: dict[str, float]
    reason_share: float  # of poor ratings, the share whose customer also gives a reason
    aspects: dict[str, dict[int, float]]  # contract.ASPECTS -> weights per score


@dataclass(frozen=True)
class Counter:
    site: str
    counter: str
    staff: str | None  # who is logged in for good; None where the hall keeps a roster
    profile: str  # how its customers score while no clerk of the roster sits there

    @property
    def device(self) -> str:
        """A terminal id like the firmware's (from the MAC), the same on every run."""
        return "ev-" + hashlib.sha1(f"{self.site}/{self.counter}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Clerk:
    """One clerk of a hall's roster, working its shifts on any counter that is free."""

    staff: str  # 工号
    name: str
    profile: str
    shifts: tuple[tuple[int, int], ...]  # (start, end) in minutes after local midnight
    days_off: tuple[int, ...]  # ISO weekdays


@dataclass(frozen=True)
class Hall:
    site: str
    mode: str  # prompt or free
    participation: float  # share of customers who press
    customers_per_hour: float  # per counter, at the curve's peak (1.0)
    counters: tuple[Counter, ...]
    clerks: tuple[Clerk, ...] = ()  # the roster; none: each counter has one clerk for good
    aspects: bool = False  # its terminals rate attitude and efficiency apart (config `aspects`)


@dataclass(frozen=True)
class Event:
    """A fraud pattern or a fault, at a moment of one day (day 1 is the first)."""

    kind: str
    day: int
    at_min: int  # minutes after local midnight
    site: str | None  # None: every hall
    counter: str | None  # None: every counter of the hall(s)
    count: int  # fraud: presses
    seconds: float  # fault: how long; stuck key: how long held


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    start: dt.date
    days: int
    utc_offset_h: float
    open_min: int
    close_min: int
    closed_weekdays: tuple[int, ...]  # ISO: 1 Monday .. 7 Sunday
    curve: tuple[float, ...]  # relative customers in each opening hour, peak 1.0
    speed: float  # simulated seconds per real second; 0: as fast as the system takes it
    window_s: int
    telemetry_s: float  # real seconds between telemetry reports
    profiles: dict[str, Profile]
    halls: tuple[Hall, ...]
    frauds: tuple[Event, ...]
    faults: tuple[Event, ...]

    @property
    def counters(self) -> list[Counter]:
        return [c for hall in self.halls for c in hall.counters]

    def day_start_ms(self, day: int) -> int:
        """Unix ms of local midnight starting the given day (1 = the first)."""
        date = self.start + dt.timedelta(days=day - 1)
        zone = dt.timezone(dt.timedelta(hours=self.utc_offset_h))
        return int(dt.datetime(date.year, date.month, date.day, tzinfo=zone).timestamp() * 1000)

    def is_open(self, day: int) -> bool:
        date = self.start + dt.timedelta(days=day - 1)
        return date.isoweekday() not in self.closed_weekdays


def load(path: Path | str) -> Scenario:
    """A scenario from a TOML file, or from its name under simulator/scenarios/."""
    file = Path(path)
    if not file.suffix and not file.exists():
        file = SCENARIOS_DIR / f"{path}.toml"
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"{file}: {e}") from None
    try:
        return _scenario(raw)
    except ScenarioError as e:
        raise ScenarioError(f"{file}: {e}") from None


def names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml"))


def _scenario(raw: dict[str, Any]) -> Scenario:
    time = _table(raw, "time")
    hours = _table(raw, "hours")
    profiles = {
        name: _profile(f"profiles.{name}", table) for name, table in _table(raw, "profiles").items()
    }
    if not profiles:
        raise ScenarioError("profiles: at least one is needed")
    halls = tuple(
        hall
        for i, table in enumerate(_list(raw, "halls"))
        for hall in _halls(f"halls[{i}]", table, profiles)
    )
    sites = [h.site for h in halls]
    if not halls or len(set(sites)) != len(sites):
        raise ScenarioError("halls: at least one, and each site once")
    open_min, close_min = _clock(hours, "open", "hours"), _clock(hours, "close", "hours")
    curve = tuple(_number(f"hours.curve[{i}]", v, 0, 1) for i, v in enumerate(hours["curve"]))
    if close_min <= open_min or len(curve) != -(-(close_min - open_min) // 60):
        raise ScenarioError("hours: close after open, and one curve value per opening hour")
    scenario = Scenario(
        name=_text(raw, "name", "name"),
        description=str(raw.get("description", "")),
        seed=int(_number("seed", raw.get("seed", 1), 0, 2**32)),
        start=_date(time, "start"),
        days=int(_number("time.days", time.get("days", 1), 1, 366)),
        utc_offset_h=_number("time.utc_offset_h", time.get("utc_offset_h", 8), -12, 14),
        open_min=open_min,
        close_min=close_min,
        closed_weekdays=tuple(
            int(_number("hours.closed_weekdays", d, 1, 7)) for d in hours.get("closed_weekdays", [])
        ),
        curve=curve,
        speed=_number("time.speed", time.get("speed", 1), 0, 10**7),
        window_s=int(_number("time.window_s", time.get("window_s", 10), 3, 120)),
        telemetry_s=_number("time.telemetry_s", time.get("telemetry_s", 60), 1, 3600),
        profiles=profiles,
        halls=halls,
        frauds=tuple(_event(f"fraud[{i}]", t, FRAUDS) for i, t in enumerate(_list(raw, "fraud"))),
        faults=tuple(_event(f"fault[{i}]", t, FAULTS) for i, t in enumerate(_list(raw, "fault"))),
    )
    for event in scenario.frauds + scenario.faults:
        _check_place(event, scenario)
    return scenario


def _halls(where: str, table: dict[str, Any], profiles: dict[str, Profile]) -> list[Hall]:
    """One [[halls]] table, which `copies` may repeat with {n} in the site numbered from 1."""
    copies = int(_number(f"{where}.copies", table.get("copies", 1), 1, 10_000))
    template = _text(table, "site", where)
    if copies > 1 and "{n" not in template:
        raise ScenarioError(f"{where}.site: copies need {{n}} in the site name")
    mode = table.get("mode", "prompt")
    if mode not in contract.MODES:
        raise ScenarioError(f"{where}.mode: {' or '.join(contract.MODES)}, not {mode!r}")
    aspects = table.get("aspects", False)
    if not isinstance(aspects, bool):
        raise ScenarioError(f"{where}.aspects: true or false, not {aspects!r}")
    cycle = table.get("profiles")
    if not isinstance(cycle, list) or not cycle or any(p not in profiles for p in cycle):
        raise ScenarioError(f"{where}.profiles: a list of profile names from [profiles]")
    count = int(_number(f"{where}.counters", table.get("counters"), 1, 99))
    roster = _list(table, "clerks")
    halls = []
    for n in range(1, copies + 1):
        site = template.format(n=n)
        if not NAME.fullmatch(site):
            raise ScenarioError(f"{where}.site: {site!r} breaks {NAME.pattern}")
        clerks = tuple(
            _clerk(f"{where}.clerks[{i}]", clerk, n, profiles) for i, clerk in enumerate(roster)
        )
        if len({c.staff for c in clerks}) != len(clerks):
            raise ScenarioError(f"{where}.clerks: each staff number once")
        counters = tuple(
            Counter(
                site,
                f"{c:02d}",
                None if clerks else f"E{n:03d}{c:02d}",
                cycle[(c - 1) % len(cycle)],
            )
            for c in range(1, count + 1)
        )
        halls.append(
            Hall(
                site=site,
                mode=mode,
                participation=_number(f"{where}.participation", table.get("participation"), 0, 1),
                aspects=aspects,
                customers_per_hour=_number(
                    f"{where}.customers_per_hour", table.get("customers_per_hour"), 0, 600
                ),
                counters=counters,
                clerks=clerks,
            )
        )
    return halls


def _clerk(where: str, table: Any, n: int, profiles: dict[str, Profile]) -> Clerk:
    """One clerk of a [[halls]] table's `clerks`; {n} in the staff number is the copy's."""
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: a table")
    staff = _text(table, "staff", where).format(n=n)
    if not STAFF.fullmatch(staff):
        raise ScenarioError(f"{where}.staff: {staff!r} breaks {STAFF.pattern}")
    profile = table.get("profile")
    if profile not in profiles:
        raise ScenarioError(f"{where}.profile: a profile name from [profiles], not {profile!r}")
    shifts = table.get("shifts")
    if not isinstance(shifts, list) or not shifts:
        raise ScenarioError(f'{where}.shifts: a list of spans like "09:00-12:00"')
    spans = sorted(_span(f"{where}.shifts[{i}]", text) for i, text in enumerate(shifts))
    if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)):
        raise ScenarioError(f"{where}.shifts: spans overlap")
    days_off = table.get("days_off", [])
    if not isinstance(days_off, list):
        raise ScenarioError(f"{where}.days_off: a list of ISO weekdays (1 Monday .. 7 Sunday)")
    return Clerk(
        staff=staff,
        name=str(table.get("name", staff)).format(n=n),
        profile=profile,
        shifts=tuple(spans),
        days_off=tuple(int(_number(f"{where}.days_off", d, 1, 7)) for d in days_off),
    )


def _span(where: str, text: Any) -> tuple[int, int]:
    """Minutes after midnight of a "HH:MM-HH:MM" span."""
    start, _, end = text.partition("-") if isinstance(text, str) else ("", "", "")
    found = (_clock({"from": start}, "from", where), _clock({"to": end}, "to", where))
    if found[1] <= found[0]:
        raise ScenarioError(f"{where}: {text!r} ends before it starts")
    return found


def _profile(where: str, table: Any) -> Profile:
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: a table")
    keys = [str(s) for s in SCORES]
    scores = {int(k): v for k, v in _weights(f"{where}.scores", table.get("scores"), keys).items()}
    reasons = _weights(f"{where}.reasons", table.get("reasons"), list(REASONS))
    aspects = {
        name: {int(k): v for k, v in _weights(f"{where}.{name}", table[name], keys).items()}
        if name in table
        else scores
        for name in contract.ASPECTS
    }
    return Profile(
        scores=scores,
        reasons=reasons,
        reason_share=_number(f"{where}.reason_share", table.get("reason_share", 0.7), 0, 1),
        aspects=aspects,
    )


def _weights(where: str, table: Any, allowed: list[str]) -> dict[str, float]:
    if not isinstance(table, dict) or not table or any(k not in allowed for k in table):
        raise ScenarioError(f"{where}: a table of weights with keys from {allowed}")
    weights = {k: _number(f"{where}.{k}", v, 0, 10**6) for k, v in table.items()}
    if not sum(weights.values()):
        raise ScenarioError(f"{where}: the weights add up to nothing")
    return weights


def _event(where: str, table: Any, kinds: tuple[str, ...]) -> Event:
    if not isinstance(table, dict) or table.get("kind") not in kinds:
        raise ScenarioError(f"{where}.kind: one of {list(kinds)}")
    return Event(
        kind=table["kind"],
        day=int(_number(f"{where}.day", table.get("day", 1), 1, 366)),
        at_min=_clock(table, "at", where),
        site=_optional_text(table, "site", where),
        counter=_optional_text(table, "counter", where),
        count=int(_number(f"{where}.count", table.get("count", 1), 1, 10_000)),
        seconds=_number(f"{where}.seconds", table.get("seconds", 30), 0, 86_400),
    )


def _check_place(event: Event, scenario: Scenario) -> None:
    if event.day > scenario.days:
        raise ScenarioError(f"{event.kind} on day {event.day}, after the last day")
    halls = [h for h in scenario.halls if event.site in (None, h.site)]
    if not halls:
        raise ScenarioError(f"{event.kind}: no hall {event.site!r}")
    if event.counter is not None and not any(
        c.counter == event.counter for h in halls for c in h.counters
    ):
        raise ScenarioError(f"{event.kind}: no counter {event.counter!r} at {event.site!r}")


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{key}: a table")
    return value


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ScenarioError(f"{key}: an array of tables ([[{key}]])")
    return value


def _number(where: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScenarioError(f"{where}: a number from {low} to {high}, not {value!r}")
    return float(value)


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}.{key}: a text")
    return value


def _optional_text(table: dict[str, Any], key: str, where: str) -> str | None:
    return None if table.get(key) is None else _text(table, key, where)


def _clock(table: dict[str, Any], key: str, where: str) -> int:
    """Minutes after midnight of an "HH:MM" value."""
    value = table.get(key)
    if isinstance(value, dt.time):
        return value.hour * 60 + value.minute
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value) if isinstance(value, str) else None
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ScenarioError(f'{where}.{key}: a time of day like "08:30", not {value!r}')
    return int(match[1]) * 60 + int(match[2])


def _date(table: dict[str, Any], key: str) -> dt.date:
    value = table.get(key)
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ScenarioError(f"time.{key}: a date like 2026-11-02, not {value!r}") from None
