"""The live view of a scale run (rich), and the quiet one-line status for CI."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from rich.console import Group
from rich.table import Table
from rich.text import Text

from simulator.scale import Progress
from simulator.virtual import Tally

PER_COUNTER_UP_TO = 16  # counters shown one a row; beyond that, one row per hall


def status(progress: Progress) -> str:
    zone = dt.timezone(dt.timedelta(hours=progress.utc_offset_h))
    when = dt.datetime.fromtimestamp(progress.sim_ms / 1000, zone) if progress.sim_ms else None
    clock = when.strftime("%Y-%m-%d %H:%M (UTC%z)") if when else "-"
    return (
        f"{progress.scenario} day {progress.day} {clock}  actions {progress.actions}  "
        f"ratings sent {progress.sent}  acked {progress.acked}  faults {len(progress.faults)}"
    )


def view(progress: Progress) -> Group:
    rows: dict[str, list[Tally]] = defaultdict(list)
    per_counter = len(progress.tallies) <= PER_COUNTER_UP_TO
    for (site, counter), tally in sorted(progress.tallies.items()):
        rows[f"{site}/{counter}" if per_counter else site].append(tally)
    table = Table(title="ratings as the terminals sent them")
    for column in (
        "counter" if per_counter else "hall",
        "prompts",
        "sent",
        "acked",
        "满意率 satisfied",
        "差评 poor",
        "stray",
        "fraud",
        "faults",
    ):
        table.add_column(column, justify="right")
    for name, tallies in rows.items():
        rated = sum(t.rated for t in tallies)
        satisfied = sum(t.satisfied for t in tallies)
        rate = satisfied / rated if rated else 0.0
        colour = "green" if rate >= 0.9 else "yellow" if rate >= 0.75 else "red"
        fraud = sum(n for t in tallies for cause, n in t.by_cause.items() if cause != "customer")
        table.add_row(
            name,
            str(sum(t.prompts for t in tallies)),
            str(sum(t.ratings for t in tallies)),
            str(sum(t.acked for t in tallies)),
            Text(f"{rate:.1%}", style=colour),
            str(sum(t.poor for t in tallies)),
            str(sum(t.stray for t in tallies)),
            str(fraud),
            str(sum(len(t.faults) for t in tallies)),
        )
    return Group(Text(status(progress), style="bold"), table)
