"""Every dashboard query, its macros expanded, against InfluxDB holding data whose truth is known.

The figures a hall manager reads are computed here again, independently, from the ground
truth of the simulated days, and must be equal, exactly (shares to the last bit of a float).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

import pytest

from dashboards import appraisal, check, files
from dashboards.boards import ALL, hall_live, terminal_health
from dashboards.cli import main as dashboards_main
from dashboards.macros import TimeRange, expand
from dashboards.model import DATASOURCE_UID, Dashboard, Panel, Query
from tests.known_month import KnownMonth

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def every_hall(km: KnownMonth) -> dict[str, str | tuple[str, ...]]:
    """The hall variable with every hall picked (it starts on one hall, and offers no All)."""
    return {"site": tuple(h.site for h in km.scenario.halls)}


def sim_range(km: KnownMonth, **values: str | tuple[str, ...]) -> TimeRange:
    s = km.scenario
    return TimeRange(s.day_start_ms(1), s.day_start_ms(s.days + 1), {**every_hall(km), **values})


def panel(board: Dashboard, title: str) -> Panel:
    return next(p for p in board.panels if p.title.startswith(title))


def rows(km: KnownMonth, p: Panel, when: TimeRange, ref: int = 0) -> list[dict[str, Any]]:
    """A panel's rows, its dashboard's variables as `when` picks them or as Grafana starts."""
    board = next(b for b in ALL if p in b.panels)
    chosen, _ = check.starting_values(km.influx, board, when)
    return km.influx.query(expand(p.queries[ref].influxql, chosen, p.max_points))


def figures(ratings: list[dict[str, Any]]) -> dict[str, Any]:
    """The live board's figures of some windows, from the truth, as the domain defines them."""
    scored = [r["score"] for r in ratings if r["score"] is not None]
    prompted = [r for r in ratings if r["mode"] == "prompt"]
    return {
        "评价数": len(scored),
        "满意率": sum(s >= 4 for s in scored) / len(scored) * 100 if scored else None,
        "好评率": sum(s >= 3 for s in scored) / len(scored) * 100 if scored else None,
        "差评率": sum(s <= 2 for s in scored) / len(scored) * 100 if scored else None,
        "平均分": sum(scored) / len(scored) if scored else None,
        "参评率": (
            sum(r["score"] is not None for r in prompted) / len(prompted) * 100
            if prompted
            else None
        ),
        "未评": sum(r["score"] is None for r in ratings),
        **{name: aspect_mean(ratings, aspect) for aspect, name in appraisal.ASPECT_NAMES.items()},
    }


def aspect_mean(ratings: list[dict[str, Any]], aspect: str) -> float | None:
    """The mean of an aspect's answers, None where the aspect mode gave none."""
    answers = [r["aspects"][aspect] for r in ratings if r.get("aspects")]
    answered = [a for a in answers if a is not None]
    return sum(answered) / len(answered) if answered else None


def test_every_query_of_every_dashboard_runs_and_finds_data(known_month):
    km = known_month
    appraisal.store(km.influx, "2026-11", "Asia/Shanghai", appraisal.compute(km.influx, "2026-11"))
    when = TimeRange(km.scenario.day_start_ms(1), km.real_to_ms)  # the sim days and the run
    outcomes = check.run(km.influx, when)
    assert [o for o in outcomes if o.error] == []
    empty = [o.where for o in outcomes if not o.rows]
    # the run is over: every terminal's last will said offline, so none is online; and the
    # hall the live board starts on does not rate attitude and efficiency apart
    aspects = ["按窗口 By counter / D", "按营业员 By clerk / D"]
    assert empty == [*aspects, "在线 Online / A"], "found nothing: " + ", ".join(empty)
    with_station = TimeRange(when.from_ms, when.to_ms, every_hall(km))
    empty = [o.where for o in check.run(km.influx, with_station) if not o.rows]
    assert empty == ["在线 Online / A"], "found nothing: " + ", ".join(empty)
    assert len(outcomes) == sum(len(b.variables) + len(list(check.panel_queries(b))) for b in ALL)
    assert "0 failed" in check.report(outcomes)


def test_a_broken_query_is_reported(known_month):
    km = known_month
    broken = Dashboard(
        "broken",
        "broken",
        "",
        (),
        ((Panel("stat", "bad", "", (Query('SELECT nonsense( FROM "rating"'),)),),),
    )
    outcomes = check.run(km.influx, sim_range(km), (broken,))
    assert outcomes[0].error and "FAILED" in check.report(outcomes)
    assert "1 failed" in check.report(outcomes)


@pytest.mark.parametrize("tag", ["counter", "staff"])
def test_per_counter_and_per_clerk_figures_equal_the_truth(known_month, tag):
    km = known_month
    board = hall_live.DASHBOARD
    title = "按窗口" if tag == "counter" else "按营业员"
    table = panel(board, title)
    merged: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for ref in range(len(table.queries)):
        for row in rows(km, table, sim_range(km), ref):
            merged[(row["site"], row.get(tag) or "")].update(row)
    expected: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in km.honest():
        expected[(r["site"], r[tag] or "")].append(r)
    suspects = Counter((r["site"], r[tag] or "") for r in km.truth if r["cause"] == "self_rating")
    assert set(merged) == set(expected)
    for key, ratings in expected.items():
        want = figures(ratings)
        got = merged[key]
        for name, value in want.items():
            if name in ("未评",) and value == 0:
                assert got.get(name) in (None, 0), (key, name)
            elif value is None:
                assert got.get(name) is None, (key, name)
            else:
                assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12), (key, name)
        assert got.get("可疑", 0) == suspects.get(key, 0), key
    if tag == "staff":  # the roster made per-clerk figures that per-counter ones are not
        assert sum(suspects.values()) == 3
        assert ("", "") not in merged and any(staff == "" for _, staff in merged)


def test_the_hall_totals_and_a_picked_clerk_equal_the_truth(known_month):
    km = known_month
    board = hall_live.DASHBOARD
    for site, staff in [(km.hall, None), (km.hall, "K02"), (km.scenario.halls[1].site, "S01")]:
        picked: dict[str, str | tuple[str, ...]] = {"site": (site,)}
        if staff:
            picked["staff"] = (staff,)
        want = figures(
            [r for r in km.honest() if r["site"] == site and staff in (None, r["staff"])]
        )
        for title, name in [
            ("评价数", "评价数"),
            ("满意率", "满意率"),
            ("好评率", "好评率"),
            ("差评率", "差评率"),
            ("平均分", "平均分"),
            ("参评率", "参评率"),
            ("未评", "未评"),
        ]:
            found = rows(km, panel(board, title), sim_range(km, **picked))
            value = next(iter(v for k, v in found[0].items() if k != "time")) if found else None
            assert (
                value == pytest.approx(want[name], rel=1e-12) if want[name] else value in (None, 0)
            )


def test_latest_poor_ratings_are_every_honest_poor_rating_newest_first(known_month):
    km = known_month
    found = rows(km, panel(hall_live.DASHBOARD, "最新差评"), sim_range(km))
    poor = sorted(
        (r for r in km.honest() if r["score"] is not None and r["score"] <= 2),
        key=lambda r: (r["ts"], r["seq"]),
        reverse=True,
    )[:50]
    assert len(found) == min(50, len(poor)) > 10
    for row, rating in zip(found, poor, strict=True):
        assert row["time"] == rating["ts"] * 10**6 + rating["seq"] % 10**6
        assert (row["评分"], row["原因"], row["营业厅"], row["窗口"], row["营业员"]) == (
            rating["score"],
            rating["reason"],
            rating["site"],
            rating["counter"],
            rating["staff"],
        )


def test_ratings_per_hour_fall_in_the_local_hours(known_month):
    km = known_month
    found = rows(km, panel(hall_live.DASHBOARD, "每小时评价"), sim_range(km))
    by_hour = {row["time"] // 10**6: row["评价数"] for row in found if row["评价数"]}
    want: Counter[int] = Counter()
    for r in km.honest():
        if r["score"] is not None:
            local = dt.datetime.fromtimestamp(r["ts"] / 1000, SHANGHAI)
            want[int(local.replace(minute=0, second=0, microsecond=0).timestamp() * 1000)] += 1
    assert by_hour == dict(want)


def test_stray_presses_and_terminals_gone_offline(known_month):
    km = known_month
    real = TimeRange(km.real_from_ms, km.real_to_ms, every_hall(km))
    stray = rows(km, panel(hall_live.DASHBOARD, "误按"), real)
    assert stray[0]["sum"] == km.stray >= 6  # the child's presses before opening, at least
    board = terminal_health.DASHBOARD
    terminals = len(km.scenario.counters)
    assert rows(km, panel(board, "在线"), real) == []
    assert rows(km, panel(board, "离线"), real)[0]["count"] == terminals
    table = rows(km, panel(board, "终端"), real)
    assert len(table) == terminals and {r["在线"] for r in table} == {0}
    assert len({r["固件"] for r in table}) == 1  # one firmware version in the hall
    assert {r["升级"] for r in table} == {None}  # and no update over the air that month
    assert sum(r["误按"] for r in table) == km.stray


def test_dashboards_are_importable():
    uids = [b.uid for b in ALL]
    assert len(set(uids)) == len(uids) == 3
    for board in ALL:
        data = board.json()
        assert data["schemaVersion"] >= 36 and data["timezone"] == "Asia/Shanghai"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in data["title"])  # a Chinese title
        ids = [p["id"] for p in data["panels"]]
        assert len(set(ids)) == len(ids)
        for p in data["panels"]:
            assert p["description"] and p["datasource"]["uid"] == DATASOURCE_UID
            refs = [t["refId"] for t in p["targets"]]
            assert len(set(refs)) == len(refs)
            assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in p["targets"])
        for v in data["templating"]["list"]:
            assert v["datasource"]["uid"] == DATASOURCE_UID
        names = {v["name"] for v in data["templating"]["list"]}
        assert {"site"} <= names


def test_the_check_command_reports_and_fails_on_a_missing_database(known_month, capsys, tmp_path):
    km = known_month
    db = ["--influx", km.influx.url]
    hours = str((km.real_to_ms - km.scenario.day_start_ms(1)) / 3_600_000 + 1)
    assert dashboards_main(["check", *db, "--db", km.database, "--hours", hours]) == 0
    assert ", 0 failed" in capsys.readouterr().out
    assert dashboards_main(["check", *db, "--db", "no_such_database"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert dashboards_main(["generate", "--out", str(tmp_path)]) == 0
    for name, text in files.contents().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text


def test_picking_a_counter_narrows_the_terminals(known_month):
    km = known_month
    board = terminal_health.DASHBOARD
    real = TimeRange(km.real_from_ms, km.real_to_ms, {"site": (km.hall,), "counter": ("01",)})
    chosen, _ = check.starting_values(km.influx, board, real)
    hall = km.scenario.halls[0]
    assert chosen.values["device"] == (hall.counters[0].device,)
    table = km.influx.query(expand(panel(board, "终端").queries[0].influxql, chosen))
    assert [row["device"] for row in table] == [hall.counters[0].device]
    every, _ = check.starting_values(km.influx, board, TimeRange(real.from_ms, real.to_ms))
    assert set(every.values["device"]) == {c.device for c in hall.counters}  # first hall, All
