"""Every query of every dashboard, its macros expanded, run against a real InfluxDB.

Grafana cannot be installed here, so this is how a dashboard is proved: each panel's every
target and each variable's query goes to InfluxDB as Grafana would send it, and any that
InfluxDB refuses is reported with its error. `svc-dashboards check` prints the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from collector.influx import InfluxError, InfluxWriter
from dashboards.boards import ALL
from dashboards.macros import ALL as ALL_VALUES
from dashboards.macros import TimeRange, expand
from dashboards.model import Dashboard


@dataclass(frozen=True)
class Outcome:
    dashboard: str  # uid
    where: str  # panel title and refId, or "variable <name>"
    query: str  # as sent
    rows: list[dict[str, Any]]
    error: str | None = None


def queries(board: Dashboard) -> Iterator[tuple[str, str]]:
    """(where, query as written) for each variable and each panel target of a dashboard."""
    for variable in board.variables:
        yield f"variable {variable.name}", variable.influxql
    for panel in board.panels:
        for i, query in enumerate(panel.queries):
            yield f"{panel.title} / {chr(ord('A') + i)}", query.influxql


def default_values(board: Dashboard) -> dict[str, str | tuple[str, ...]]:
    """All for every multi-valued variable; a single-valued one takes its query's first value
    when it runs (see run())."""
    return {v.name: (ALL_VALUES,) for v in board.variables if v.multi}


def run(
    influx: InfluxWriter,
    when: TimeRange,
    boards: tuple[Dashboard, ...] = ALL,
) -> list[Outcome]:
    """Run every query of the dashboards; variables not chosen in `when` take All, or for a
    single-valued one the first value its own query gives (as Grafana does on load)."""
    outcomes: list[Outcome] = []
    for board in boards:
        values = {**default_values(board), **when.values}
        for variable in board.variables:
            if variable.name in values:
                continue
            first = _run(influx, board.uid, f"variable {variable.name}", variable.influxql, when)
            values[variable.name] = str(first.rows[0]["value"]) if first.rows else ""
        chosen = TimeRange(when.from_ms, when.to_ms, values)
        outcomes += [_run(influx, board.uid, where, q, chosen) for where, q in queries(board)]
    return outcomes


def _run(influx: InfluxWriter, uid: str, where: str, query: str, when: TimeRange) -> Outcome:
    sent = expand(query, when)
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
