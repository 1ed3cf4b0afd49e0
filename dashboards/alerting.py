"""Grafana unified alerting: the rules, where notifications go, and when they are muted.

The rules (each an InfluxQL query, reduced and compared by Grafana's server-side expressions):
- `svc-poor-rating`: every honest poor rating (score <= 2) at a counter, within 2 minutes;
- `svc-poor-trend`: at one counter, at least 4 honest ratings within 15 minutes and half or
  more of them poor (the common trigger of docs/domain.md);
- `svc-terminal-offline`: a terminal whose latest report is its last will, for 5 minutes;
  muted outside opening hours (`svc-outside-opening-hours`), so only a terminal offline
  while the hall is open reaches anyone;
- `svc-queue-growing`: a terminal with 50 or more ratings waiting and more than 15 minutes ago.
The collector raises the same events on MQTT (`{root}/{site}/alert`) within a second; these
rules are for halls that run Grafana's notifications (WeCom, DingTalk, e-mail, a webhook).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.model import DATASOURCE_UID

FOLDER = "服务评价 Service rating"  # the dashboards' and the rules' Grafana folder
FOLDER_UID = "svc-rating"
GROUP = "svc-ratings"
INTERVAL = "1m"
CONTACT_POINT = "svc-hall"
MUTE_OUTSIDE_HOURS = "svc-outside-opening-hours"
OPENING = ("08:30", "17:30")  # Asia/Shanghai; a hall with other hours edits policies.yaml
QUEUE_ALERT = 50  # as the collector's SVC_QUEUE_ALERT
HONEST = '$timeFilter AND "suspect" = 0'

Json = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    uid: str
    title: str
    summary: str  # Chinese, then English; Go template for the notification
    queries: dict[str, tuple[str, int]]  # refId: (InfluxQL, seconds back from now)
    expressions: dict[str, Json]  # refId: a server-side expression's model
    condition: str
    for_: str = "0s"

    def json(self) -> Json:
        data: list[Json] = [
            {
                "refId": ref,
                "relativeTimeRange": {"from": seconds, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": ref,
                    "rawQuery": True,
                    "query": query,
                    "resultFormat": "time_series",
                },
            }
            for ref, (query, seconds) in self.queries.items()
        ]
        data += [
            {"refId": ref, "datasourceUid": "__expr__", "model": {"refId": ref, **model}}
            for ref, model in self.expressions.items()
        ]
        return {
            "uid": self.uid,
            "title": self.title,
            "condition": self.condition,
            "data": data,
            "noDataState": "OK",
            "execErrState": "Error",
            "for": self.for_,
            "annotations": {"summary": self.summary},
            "labels": {"svc_rule": self.uid.removeprefix("svc-").replace("-", "_")},
            "isPaused": False,
        }


def _last(expression: str) -> Json:
    return {"type": "reduce", "expression": expression, "reducer": "last"}


def _above(expression: str, value: float) -> Json:
    return {
        "type": "threshold",
        "expression": expression,
        "conditions": [{"evaluator": {"type": "gt", "params": [value]}}],
    }


RULES = (
    Rule(
        uid="svc-poor-rating",
        title="差评 Poor rating",
        summary="{{ $labels.site }} 窗口 {{ $labels.counter }} 营业员 {{ $labels.staff }}"
        " 收到差评，请当日回访。 A poor rating at this counter: follow it up today.",
        queries={
            "A": (
                f'SELECT count("score") FROM rating WHERE {HONEST} AND "poor" = 1 '
                'GROUP BY "site", "counter", "staff"',
                120,
            )
        },
        expressions={"B": _last("A"), "C": _above("B", 0)},
        condition="C",
    ),
    Rule(
        uid="svc-poor-trend",
        title="差评集中 Poor ratings piling up",
        summary="{{ $labels.site }} 窗口 {{ $labels.counter }} 15分钟内差评过半。"
        " Half or more of this counter's ratings in 15 minutes were poor.",
        queries={
            "A": (
                f'SELECT count("score") FROM rating WHERE {HONEST} GROUP BY "site", "counter"',
                900,
            ),
            "B": (
                f'SELECT mean("poor") FROM rating WHERE {HONEST} GROUP BY "site", "counter"',
                900,
            ),
        },
        expressions={
            "C": _last("A"),
            "D": _last("B"),
            "E": {"type": "math", "expression": "$C >= 4 && $D >= 0.5"},
        },
        condition="E",
    ),
    Rule(
        uid="svc-terminal-offline",
        title="终端离线 Terminal offline",
        summary="{{ $labels.site }} 终端 {{ $labels.device }} 营业时间内离线。"
        " This terminal is offline during opening hours.",
        queries={
            "A": (
                'SELECT last("online") FROM device WHERE $timeFilter GROUP BY "site", "device"',
                86_400,
            )
        },
        expressions={
            "B": _last("A"),
            "C": {
                "type": "threshold",
                "expression": "B",
                "conditions": [{"evaluator": {"type": "lt", "params": [1]}}],
            },
        },
        condition="C",
        for_="5m",
    ),
    Rule(
        uid="svc-queue-growing",
        title="待发队列增长 Queue growing",
        summary="{{ $labels.site }} 终端 {{ $labels.device }} 待发评价持续增加，无法送达。"
        " Ratings are piling up on this terminal: they cannot get through.",
        queries={
            "A": (
                'SELECT last("queue") FROM device WHERE $timeFilter GROUP BY "site", "device"',
                900,
            ),
            "B": (
                'SELECT first("queue") FROM device WHERE $timeFilter GROUP BY "site", "device"',
                900,
            ),
        },
        expressions={
            "C": _last("A"),
            "D": _last("B"),
            "E": {"type": "math", "expression": f"$C >= {QUEUE_ALERT} && $C > $D"},
        },
        condition="E",
    ),
)


def rules_file() -> Json:
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": INTERVAL,
                "rules": [rule.json() for rule in RULES],
            }
        ],
    }


# Grafana expands ${...} from its environment. Each receiver needs its address: set them all,
# or remove from contact-points.yaml the ones a hall does not use (`svc-dashboards provision`
# pushes only those whose variable is set).
RECEIVERS = (
    ("wecom", "SVC_WECOM_WEBHOOK_URL", {"url": "${SVC_WECOM_WEBHOOK_URL}"}),
    (
        "dingding",
        "SVC_DINGTALK_WEBHOOK_URL",
        {"url": "${SVC_DINGTALK_WEBHOOK_URL}", "msgType": "link"},
    ),
    ("email", "SVC_ALERT_EMAILS", {"addresses": "${SVC_ALERT_EMAILS}", "singleEmail": True}),
    ("webhook", "SVC_ALERT_WEBHOOK_URL", {"url": "${SVC_ALERT_WEBHOOK_URL}", "httpMethod": "POST"}),
)


def receiver(kind: str, settings: Json) -> Json:
    return {
        "uid": f"svc-{kind}",
        "type": kind,
        "settings": settings,
        "disableResolveMessage": False,
    }


def contact_points_file() -> Json:
    return {
        "apiVersion": 1,
        "contactPoints": [
            {
                "orgId": 1,
                "name": CONTACT_POINT,
                "receivers": [receiver(kind, settings) for kind, _, settings in RECEIVERS],
            }
        ],
    }


def policy() -> Json:
    """The notification policy tree: everything to the hall's contact point, grouped per
    counter or terminal; terminal-offline muted outside opening hours."""
    return {
        "receiver": CONTACT_POINT,
        "group_by": ["alertname", "site", "counter", "device"],
        "group_wait": "0s",
        "group_interval": "1m",
        "repeat_interval": "4h",
        "routes": [
            {
                "receiver": CONTACT_POINT,
                "object_matchers": [["svc_rule", "=", "terminal_offline"]],
                "mute_time_intervals": [MUTE_OUTSIDE_HOURS],
            }
        ],
    }


def mute_timing() -> Json:
    return {
        "name": MUTE_OUTSIDE_HOURS,
        "time_intervals": [
            {
                "times": [
                    {"start_time": "00:00", "end_time": OPENING[0]},
                    {"start_time": OPENING[1], "end_time": "24:00"},
                ],
                "location": "Asia/Shanghai",
            }
        ],
    }


def policies_file() -> Json:
    return {
        "apiVersion": 1,
        "policies": [{"orgId": 1, **policy()}],
        "muteTimes": [{"orgId": 1, **mute_timing()}],
    }
