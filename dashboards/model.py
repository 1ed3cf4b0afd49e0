"""A little model of Grafana dashboards: panels with InfluxQL targets, variables, dashboards.

Each dashboard is written in Python with these builders (dashboards/boards/) and turned into
the JSON Grafana loads (`svc-dashboards generate`). A panel is then a few lines that say what
it shows and which query gives it, instead of a hundred lines of JSON where the query hides
among layout keys; what every panel of a kind shares (data source, units, colours) is said
here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE_UID = "svc-service-quality"  # dashboards/provisioning/datasources/
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
TIMEZONE = "Asia/Shanghai"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11
GRID_WIDTH = 24

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One InfluxQL target, written with Grafana's macros ($timeFilter, $__interval, $var)."""

    influxql: str
    table: bool = True  # a table of rows (resultFormat table) or time series

    def target(self, ref_id: str) -> Json:
        return {
            "refId": ref_id,
            "datasource": DATASOURCE,
            "rawQuery": True,
            "query": self.influxql,
            "resultFormat": "table" if self.table else "time_series",
        }


@dataclass(frozen=True)
class Panel:
    kind: str  # Grafana panel type: stat, table, timeseries, barchart, piechart
    title: str
    description: str  # Chinese, then English
    queries: tuple[Query, ...]
    width: int = 6
    height: int = 5
    unit: str = "none"
    decimals: int | None = None
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "blue"),)
    options: Json = field(default_factory=dict)
    overrides: tuple[Json, ...] = ()
    mappings: tuple[Json, ...] = ()
    transformations: tuple[Json, ...] = ()
    max_points: int = 1000  # Grafana's maxDataPoints: $__interval is the range over this

    def json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"value": v, "color": c} for v, c in self.thresholds],
            },
            "mappings": list(self.mappings),
        }
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "targets": [q.target(chr(ord("A") + i)) for i, q in enumerate(self.queries)],
            "maxDataPoints": self.max_points,
            "fieldConfig": {"defaults": defaults, "overrides": list(self.overrides)},
            "options": self.options,
            "transformations": list(self.transformations),
        }


@dataclass(frozen=True)
class Variable:
    """A query variable. Multi-valued ones offer All unless include_all is off; then Grafana
    starts on the first value, as a single-valued one does. All means any value at all (`.*`,
    also a point without the tag), or with all_means_any off every value the query lists."""

    name: str
    label: str
    influxql: str  # SHOW TAG VALUES ..., may use the variables before it
    multi: bool = True
    include_all: bool = True
    all_means_any: bool = True
    newest_first: bool = False  # values sorted descending (a month: the latest on top)

    @property
    def starts_on_all(self) -> bool:
        return self.multi and self.include_all

    def json(self) -> Json:
        return {
            "type": "query",
            "name": self.name,
            "label": self.label,
            "datasource": DATASOURCE,
            "query": self.influxql,
            "definition": self.influxql,
            "refresh": 2,  # on time range change
            "includeAll": self.starts_on_all,
            "multi": self.multi,
            "allValue": ".*" if self.starts_on_all and self.all_means_any else None,
            "current": {"text": "All", "value": "$__all"} if self.starts_on_all else {},
            "sort": 2 if self.newest_first else 1,  # alphabetical, descending or ascending
        }


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[tuple[Panel, ...], ...]  # laid out left to right, row under row
    time_from: str = "now/d"
    time_to: str = "now"
    refresh: str = ""
    tags: tuple[str, ...] = ("svc-rating",)

    @property
    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row]

    def json(self) -> Json:
        panels: list[Json] = []
        y = 0
        for row in self.rows:
            x = 0
            for panel in row:
                if x + panel.width > GRID_WIDTH:
                    raise ValueError(f"{self.uid}: the row holding {panel.title!r} is too wide")
                panels.append(panel.json(len(panels) + 1, x, y))
                x += panel.width
            y += max(p.height for p in row)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": TIMEZONE,
            "schemaVersion": SCHEMA_VERSION,
            "editable": False,
            "graphTooltip": 1,
            "time": {"from": self.time_from, "to": self.time_to},
            "refresh": self.refresh,
            "templating": {"list": [v.json() for v in self.variables]},
            "panels": panels,
        }
