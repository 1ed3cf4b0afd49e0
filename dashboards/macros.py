"""Grafana's macros in an InfluxQL query, expanded the way its InfluxDB data source does.

- `$timeFilter` becomes `time >= <from>ms and time <= <to>ms`;
- `$__interval` the range over the panel's points, rounded to a tidy step, at least 1s
  (`$__interval_ms` the same in ms); `$__from` and `$__to` the range's ends in Unix ms;
- `$name`, `${name}` and `[[name]]` a variable's value: a single-valued variable's as it is;
  a multi-valued one's All is its allValue (`.*`), several values a regex group `(a|b)`, each
  escaped for the /regex/ it stands in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_DATA_POINTS = 1000  # about a panel's width in pixels
# Grafana's tidy intervals (its rangeutil), in ms, from which $__interval is taken
TIDY_MS = (
    1, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000,
    120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
    10_800_000, 21_600_000, 43_200_000, 86_400_000, 604_800_000, 2_592_000_000,
)  # fmt: skip
ALL = "$__all"
_REGEX_SPECIAL = re.compile(r"([\\^$.*+?()\[\]{}|/])")  # as Grafana escapes (lodash's set and /)
_VARIABLE = re.compile(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)")


@dataclass(frozen=True)
class TimeRange:
    from_ms: int
    to_ms: int
    # chosen values by variable: a text for a single-valued one, a tuple for a multi-valued one
    values: dict[str, str | tuple[str, ...]] = field(default_factory=dict)


def interval_ms(from_ms: int, to_ms: int, max_points: int = MAX_DATA_POINTS) -> int:
    """The tidy interval at or just under range / max_points, and 1 s at least."""
    raw = (to_ms - from_ms) / max_points
    below = [step for step in TIDY_MS if step <= raw]
    return max(below[-1] if below else TIDY_MS[0], 1_000)


def duration(ms: int) -> str:
    """An InfluxQL duration literal: 15m, 1h, 1500ms."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def expand(query: str, when: TimeRange, max_points: int = MAX_DATA_POINTS) -> str:
    """The query as Grafana sends it to InfluxDB for that range and those variable values, for
    a panel showing at most max_points points."""
    step = interval_ms(when.from_ms, when.to_ms, max_points)
    builtins = {
        "timeFilter": f"time >= {when.from_ms}ms and time <= {when.to_ms}ms",
        "__interval": duration(step),
        "__interval_ms": str(step),
        "__from": str(when.from_ms),
        "__to": str(when.to_ms),
    }

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        if name in builtins:
            return builtins[name]
        chosen = when.values.get(name)
        if chosen is None:
            return match[0]  # not a variable of ours: left as written
        return chosen if isinstance(chosen, str) else regex_value(chosen)

    return _VARIABLE.sub(value, query)


def regex_value(chosen: tuple[str, ...]) -> str:
    """A multi-valued variable's text inside /^...$/: All is `.*`, else a group of escapes."""
    if not chosen or ALL in chosen:
        return ".*"
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", v) for v in chosen]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
