"""An alert rule evaluated as Grafana evaluates it, against a real InfluxDB, now.

Grafana cannot run here, so the rules are proved this way: each query goes to InfluxDB with
its relative time range as `$timeFilter`; each series (one per tag set) is reduced, and the
math and threshold expressions are applied per tag set, as Grafana's server-side expressions
do for the kinds the rules use (reduce, math with comparisons and && ||, threshold gt/lt).
A tag set whose condition is not 0 is firing. `svc-dashboards alerts` prints what fires.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

from collector.influx import InfluxHttp
from dashboards.alerting import Rule
from dashboards.macros import TimeRange, expand

Labels = tuple[tuple[str, str], ...]
Values = dict[Labels, float]

REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda v: v[-1],
    "max": max,
    "min": min,
    "sum": sum,
    "count": len,
    "mean": lambda v: sum(v) / len(v),
}
COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def firing(rule: Rule, influx: InfluxHttp, now_ms: int) -> list[dict[str, str]]:
    """The label sets for which the rule's condition holds now (empty: no alert)."""
    results: dict[str, dict[Labels, list[float]] | Values] = {}
    for ref, (query, seconds) in rule.queries.items():
        when = TimeRange(now_ms - seconds * 1000, now_ms)
        results[ref] = _series(influx.query(expand(query, when)))
    for ref, model in rule.expressions.items():
        results[ref] = _expression(model, results)
    condition = results[rule.condition]
    return [dict(labels) for labels, value in condition.items() if value]


def _series(rows: list[dict[str, Any]]) -> dict[Labels, list[float]]:
    """Rows of an InfluxQL answer as one list of values per tag set, in time order."""
    found: dict[Labels, list[float]] = {}
    for row in rows:
        value = next(
            (v for k, v in row.items() if k != "time" and isinstance(v, int | float)), None
        )
        labels = tuple(sorted((k, str(v)) for k, v in row.items() if isinstance(v, str)))
        if value is not None:
            found.setdefault(labels, []).append(float(value))
    return found


def _expression(model: dict[str, Any], results: dict[str, Any]) -> Values:
    kind = model["type"]
    if kind == "reduce":
        reduce = REDUCERS[model["reducer"]]
        return {labels: reduce(values) for labels, values in results[model["expression"]].items()}
    if kind == "threshold":
        evaluator = model["conditions"][0]["evaluator"]
        test = {"gt": operator.gt, "lt": operator.lt}[evaluator["type"]]
        limit = float(evaluator["params"][0])
        return {
            labels: float(test(value, limit))
            for labels, value in results[model["expression"]].items()
        }
    if kind == "math":
        return _math(model["expression"], results)
    raise ValueError(f"expression type {kind!r} is not one the rules use")


def _math(text: str, results: dict[str, Values]) -> Values:
    """Grafana's math expression over reduced results, per tag set present in every operand."""
    tree = ast.parse(
        text.replace("&&", " and ").replace("||", " or ").replace("$", "_"), mode="eval"
    )
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    operands = {name: results[name.removeprefix("_")] for name in names}
    common = set.intersection(*(set(values) for values in operands.values()))
    return {
        labels: _value(tree.body, {name: v[labels] for name, v in operands.items()})
        for labels in common
    }


def _value(node: ast.expr, names: dict[str, float]) -> float:
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BoolOp):
        values = [_value(v, names) != 0 for v in node.values]
        return float(all(values) if isinstance(node.op, ast.And) else any(values))
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        compare = COMPARE[type(node.ops[0])]
        return float(compare(_value(node.left, names), _value(node.comparators[0], names)))
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        return ARITHMETIC[type(node.op)](_value(node.left, names), _value(node.right, names))
    raise ValueError(f"math expression part {ast.dump(node)} is not supported")
