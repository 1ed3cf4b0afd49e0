"""`svc-collector latest`: the newest ratings InfluxDB holds, as a table, to see at a glance
that ratings arrive and are stored (Debian's influxdb package brings no `influx` client)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from collector.influx import InfluxError, InfluxHttp

COLUMNS = ("time", "site", "device", "counter", "staff", "score", "reason", "seq", "suspect")


def rows(influx: InfluxHttp, count: int) -> list[dict[str, Any]]:
    """The newest `count` ratings, newest first; InfluxError for an answer without times."""
    found = influx.query(f"SELECT * FROM rating ORDER BY time DESC LIMIT {int(count)}")
    if not all(isinstance(row.get("time"), int) for row in found):
        raise InfluxError("/query: an answer whose rows have no time in ns")
    return found


def table(found: list[dict[str, Any]], tz: dt.tzinfo | None = None) -> str:
    """The rows as aligned text, times in the machine's time zone (or `tz`)."""
    lines = [list(COLUMNS)]
    for row in found:
        when = dt.datetime.fromtimestamp(row["time"] / 1e9, tz or dt.UTC)
        when = when if tz else when.astimezone()
        cells = [when.strftime("%Y-%m-%d %H:%M:%S")]
        cells += [_cell(row.get(column)) for column in COLUMNS[1:]]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
