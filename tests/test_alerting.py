"""Alert rules, contact points and policies: files that parse, queries that run, rules that fire
on data that should fire them and stay quiet on data that should not."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import yaml

from collector import device, rating
from collector.influx import InfluxHttp
from collector.topics import DeviceTopic
from dashboards import alerting, evaluate, files
from dashboards.cli import main as dashboards_main
from dashboards.model import DATASOURCE_UID
from tests.samples import RATING_EXAMPLE

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def influx(influxdb) -> InfluxHttp:
    writer = InfluxHttp(influxdb.url, f"alerts_{uuid.uuid4().hex[:8]}")
    writer.ensure_database()
    return writer


def press(
    influx: InfluxHttp,
    counter: str,
    scores: list[int],
    *,
    ago_s: float = 60,
    suspect: str | None = None,
) -> None:
    """Ratings at a counter of hall-a, pressed ago_s seconds ago and after, stored as the
    collector stores them."""
    lines = []
    for i, score in enumerate(scores):
        ts = NOW_MS - int(ago_s * 1000) + i * 1000
        body = {**RATING_EXAMPLE, "seq": i + 1, "ts": ts, "score": score, "counter": counter}
        where = DeviceTopic("hall-a", f"ev-{counter}", "rating")
        lines.append(rating.parse(where, json.dumps(body).encode()).point(ts + 100, None, suspect))
    influx.write(lines)


def report(influx: InfluxHttp, name: str, queue: list[int], online: bool = True) -> None:
    """Telemetry from terminal `name` over the last few minutes, its queue as given."""
    where = DeviceTopic("hall-a", name, "telemetry")
    lines = []
    for i, waiting in enumerate(queue):
        at_ns = (NOW_MS - (len(queue) - i) * 60_000) * 10**6
        body = {"v": 1, "boot": 1, "uptime_s": 60 * i, "queue": waiting, "fw": "1.0.0"}
        lines.append(device.telemetry(where, json.dumps(body).encode(), at_ns).point())
    if not online:
        will = device.state(
            DeviceTopic("hall-a", name, "state"), b'{"v":1,"online":false}', NOW_MS * 10**6
        )
        assert will is not None
        lines.append(will.point())
    influx.write(lines)


def fired(influx: InfluxHttp, uid: str) -> list[dict[str, str]]:
    rule = next(r for r in alerting.RULES if r.uid == uid)
    return evaluate.firing(rule, influx, NOW_MS + 1000)


def test_the_committed_provisioning_files_are_what_the_code_writes():
    for name, text in files.contents().items():
        path = files.PROVISIONING / name
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run svc-dashboards generate"
        )


def test_alerting_files_parse_and_hang_together():
    folder = files.PROVISIONING / "alerting"
    rules = yaml.safe_load((folder / "rules.yaml").read_text())
    points = yaml.safe_load((folder / "contact-points.yaml").read_text())
    policies = yaml.safe_load((folder / "policies.yaml").read_text())
    group = rules["groups"][0]
    uids = [r["uid"] for r in group["rules"]]
    assert len(set(uids)) == len(uids) == 4
    for r in group["rules"]:
        refs = [d["refId"] for d in r["data"]]
        assert len(set(refs)) == len(refs) and r["condition"] in refs
        for d in r["data"]:
            assert d["datasourceUid"] in (DATASOURCE_UID, "__expr__")
            assert d["model"]["refId"] == d["refId"]
            if d["datasourceUid"] == "__expr__":
                used = d["model"].get("expression", "")
                assert all(ref in refs for ref in used.replace("$", " $").split() if ref in refs)
    kinds = {r["type"] for cp in points["contactPoints"] for r in cp["receivers"]}
    assert kinds == {"wecom", "dingding", "email", "webhook"}
    assert all(
        "${SVC_" in json.dumps(r["settings"]) for r in points["contactPoints"][0]["receivers"]
    )
    policy = policies["policies"][0]
    assert policy["receiver"] == points["contactPoints"][0]["name"]
    muted = policy["routes"][0]["mute_time_intervals"]
    assert muted == [policies["muteTimes"][0]["name"]]


def test_a_poor_rating_fires_and_a_good_or_suspect_one_does_not(influx):
    press(influx, "01", [5, 4, 5])
    press(influx, "02", [5, 1], suspect=None)
    press(influx, "03", [2], suspect="fast_press")
    assert fired(influx, "svc-poor-rating") == [
        {"site": "hall-a", "counter": "02", "staff": "E1023"}
    ]
    press(influx, "04", [1], ago_s=600)  # ten minutes ago: already told
    assert len(fired(influx, "svc-poor-rating")) == 1


def test_the_trend_rule_wants_four_ratings_half_of_them_poor(influx):
    press(influx, "01", [1, 5, 2, 4])  # 4 ratings, 2 poor: fires
    press(influx, "02", [1, 2, 5])  # 3 ratings: too few
    press(influx, "03", [1, 5, 2, 4, 5])  # 2 of 5 poor: under half
    press(influx, "04", [1, 1, 1, 1], ago_s=1200)  # before the 15 minutes
    press(influx, "05", [1, 1, 5, 5, 5], suspect="burst")  # suspect ones never count
    assert fired(influx, "svc-poor-trend") == [{"site": "hall-a", "counter": "01"}]


def test_offline_and_growing_queue_rules(influx):
    report(influx, "ev-up", [0, 0, 0])
    report(influx, "ev-gone", [0, 0], online=False)
    report(influx, "ev-backlog", [10, 30, 60])  # at least 50 and growing: fires
    report(influx, "ev-draining", [90, 70, 60])  # high but shrinking
    report(influx, "ev-small", [5, 10, 20])  # growing but small
    assert fired(influx, "svc-terminal-offline") == [{"site": "hall-a", "device": "ev-gone"}]
    assert fired(influx, "svc-queue-growing") == [{"site": "hall-a", "device": "ev-backlog"}]


def test_no_data_fires_nothing_and_the_cli_prints_each_rule(influx, capsys):
    assert all(fired(influx, rule.uid) == [] for rule in alerting.RULES)
    press(influx, "07", [1])
    assert dashboards_main(["alerts", "--influx", influx.url, "--db", influx.database]) == 0
    out = capsys.readouterr().out
    assert "svc-poor-rating        FIRING" in out and "counter=07" in out
    assert "svc-queue-growing      ok" in out
