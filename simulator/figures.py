"""The figures a hall manager reads, computed by InfluxQL from the stored ratings."""

from __future__ import annotations

from dataclasses import dataclass

from devstack.influxdb import InfluxServer


@dataclass(frozen=True)
class CounterFigures:
    counter: str
    windows: int  # every rating point: rated or skipped
    rated: int
    satisfied: int
    unhappy: int
    mean_score: float

    @property
    def satisfaction(self) -> float:
        """满意率: score >= 4 over all rated."""
        return self.satisfied / self.rated if self.rated else 0.0


def _counts(influx: InfluxServer, db: str, where: str) -> dict[str, int]:
    q = f"SELECT count(score) AS n FROM rating WHERE {where} GROUP BY counter"
    return {str(r["counter"]): int(r["n"]) for r in influx.query(q, db)}


def per_counter(influx: InfluxServer, db: str, since_ns: int) -> list[CounterFigures]:
    since = f"time >= {since_ns}"
    q = (
        "SELECT count(rated) AS windows, count(score) AS n, mean(score) AS mean "
        f"FROM rating WHERE {since} GROUP BY counter"
    )
    totals = influx.query(q, db)
    satisfied = _counts(influx, db, f"{since} AND score >= 4")
    unhappy = _counts(influx, db, f"{since} AND score <= 2")
    figures = [
        CounterFigures(
            counter=str(row["counter"]),
            windows=int(row["windows"]),
            rated=int(row["n"]),
            satisfied=satisfied.get(str(row["counter"]), 0),
            unhappy=unhappy.get(str(row["counter"]), 0),
            mean_score=float(row["mean"] or 0.0),
        )
        for row in totals
    ]
    return sorted(figures, key=lambda f: f.counter)
