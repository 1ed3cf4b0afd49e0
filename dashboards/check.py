"""Every query of every dashboard, its macros expanded, run against a real InfluxDB.

Grafana cannot be installed here, so this is how a dashboard is proved: each panel's every
target and each variable's query goes to InfluxDB as Grafana would send it, and any that
InfluxDB refuses is reported with its error. `svc-dashboards check` prints the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from collector.influx import InfluxError, InfluxHttp
from dashboards.boards import ALL
from dashboards.macros import ALL as ALL_VALUES
from dashboards.macros import MAX_DATA_POINTS, TimeRange, expand
from dashboards.model import Dashboard


@dataclass(frozen=True)
class Outcome:
    dashboard: str  # uid
    where: str  # panel title and refId, or "variable <name>"
    query: str  # as sent
    rows: list[dict[str, Any]]
    error: str | None = None


def panel_queries(board: Dashboard) -> Iterator[tuple[str, str, int]]:
    """(where, query as written, the panel's maxDataPoints) for each panel target."""
    for panel in board.panels:
        for i, query in enumerate(panel.queries):
            yield f"{panel.title} / {chr(ord('A') + i)}", query.influxql, panel.max_points


def _any_values(board: Dashboard) -> dict[str, str | tuple[str, ...]]:
    """All for every variable that starts on All meaning any value; the others take what their
    own query gives when it runs (see starting_values)."""
    return {v.name: (ALL_VALUES,) for v in board.variables if v.starts_on_all and v.all_means_any}


def run(
    influx: InfluxHttp,
    when: TimeRange,
    boards: tuple[Dashboard, ...] = ALL,
) -> list[Outcome]:
    """Run every query of the dashboards, with the variable values Grafana starts on where
    `when` chooses none (see starting_values)."""
    outcomes: list[Outcome] = []
    for board in boards:
        chosen, found = starting_values(influx, board, when)
        outcomes += found
        outcomes += [
            _run(influx, board.uid, where, q, chosen, max_points=points)
            for where, q, points in panel_queries(board)
        ]
    return outcomes


def starting_values(
    influx: InfluxHttp, board: Dashboard, when: TimeRange
) -> tuple[TimeRange, list[Outcome]]:
    """The range with the values Grafana starts a dashboard on, and each variable query's
    outcome: for a variable not chosen in `when`, All (any value, or every value its own query
    lists), or where it offers no All the first value of its query, sorted as it says. A query
    may use the variables before it."""
    values = {**_any_values(board), **when.values}
    outcomes = []
    for variable in board.variables:
        chosen = TimeRange(when.from_ms, when.to_ms, values)
        found = _run(influx, board.uid, f"variable {variable.name}", variable.influxql, chosen)
        outcomes.append(found)
        if variable.name not in values:
            listed = {str(row["value"]) for row in found.rows}  # Grafana lists each value once
            options = sorted(listed, reverse=variable.newest_first)
            if variable.starts_on_all:
                values[variable.name] = tuple(options)
            else:
                first = options[0] if options else ""
                values[variable.name] = (first,) if variable.multi else first
    return TimeRange(when.from_ms, when.to_ms, values), outcomes


def _run(
    influx: InfluxHttp,
    uid: str,
    where: str,
    query: str,
    when: TimeRange,
    *,
    max_points: int = MAX_DATA_POINTS,
) -> Outcome:
    sent = expand(query, when, max_points)
    try:
        return Outcome(uid, where, sent, influx.query(sent))
    except InfluxError as e:
        return Outcome(uid, where, sent, [], str(e))


def report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        status = f"FAILED {o.error}" if o.error else f"{len(o.rows)} rows"
        lines.append(f"{o.dashboard:<22} {o.where:<48} {status}")
        if o.error:
            lines.append(f"    {o.query}")
    failed = sum(o.error is not None for o in outcomes)
    lines.append(f"{len(outcomes)} queries, {failed} failed")
    return "\n".join(lines)
