"""svc-appraisal on simulated days across a month's edge, against figures from the ground truth."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from collector import clerk, lineprotocol, rating
from collector.influx import InfluxHttp
from collector.topics import DeviceTopic
from dashboards import appraisal, export
from dashboards.boards import clerk_appraisal
from dashboards.cli import appraisal_main
from dashboards.macros import TimeRange, expand
from tests.known_month import KnownMonth
from tests.samples import RATING_EXAMPLE

MIN = 200  # ratings a clerk needs to be ranked: the clerk on a half-hour shift has fewer
SHANGHAI = ZoneInfo("Asia/Shanghai")
EVERYONE = {"month": "2026-11", "site": ("$__all",), "staff": ("$__all",)}  # as the board opens


def textbook_wilson_low(successes: int, n: int, z: float = 1.96) -> float:
    """Wilson (1927), as textbooks write it: (s + z²/2)/(n + z²) - z/(n + z²)·√(s·f/n + z²/4)."""
    failures = n - successes
    centre = (successes + z * z / 2) / (n + z * z)
    return centre - z / (n + z * z) * math.sqrt(successes * failures / n + z * z / 4)


def in_month(km: KnownMonth, tz: str) -> list[dict[str, Any]]:
    zone = ZoneInfo(tz)
    start = dt.datetime(2026, 11, 1, tzinfo=zone).timestamp() * 1000
    after = dt.datetime(2026, 12, 1, tzinfo=zone).timestamp() * 1000
    return [r for r in km.truth if start <= r["ts"] < after]


def expected_rows(ratings: list[dict[str, Any]], min_ratings: int) -> dict[tuple[str, str], dict]:
    """The CSV's figures per (site, staff), per (site, "") for halls and per ("", staff) for
    clerks over every hall, from the truth."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in ratings:
        groups[(r["site"], "")].append(r)
        if r["staff"]:
            groups[(r["site"], r["staff"])].append(r)
            groups[("", r["staff"])].append(r)
    rows = {}
    for key, group in groups.items():
        honest = [r for r in group if r["cause"] != "self_rating" and r["score"] is not None]
        satisfied = sum(r["score"] >= 4 for r in honest)
        poor = [r for r in honest if r["score"] <= 2]
        rows[key] = {
            "rated": len(honest),
            "satisfied": satisfied,
            "satisfaction": satisfied / len(honest) if honest else None,
            "wilson_low": textbook_wilson_low(satisfied, len(honest)) if honest else None,
            "poor": len(poor),
            "skipped": sum(r["score"] is None for r in group),
            "suspect": sum(r["cause"] == "self_rating" and r["score"] is not None for r in group),
            "excluded": 0,  # no appeal upheld (tests/test_console_reviews.py has them)
            **{
                f"reason_{reason}": sum(r["reason"] == reason for r in poor)
                for reason in appraisal.REASONS
            },
            "rank": None,
            **aspect_figures(honest),
        }
    for everywhere in (False, True):  # clerks in a hall, and clerks over every hall, apart
        clerks = [
            k
            for k in rows
            if k[1] and (k[0] == "") == everywhere and rows[k]["rated"] >= min_ratings
        ]
        for key in clerks:  # 1 + those strictly ahead: equal figures share a rank
            ahead = (rows[key]["wilson_low"], rows[key]["rated"])
            rows[key]["rank"] = 1 + sum(
                (rows[k]["wilson_low"], rows[k]["rated"]) > ahead for k in clerks
            )
    return rows


def aspect_figures(honest: list[dict[str, Any]]) -> dict[str, Any]:
    """Per aspect: how many rated ratings answered it, and their mean; None without any."""
    found: dict[str, Any] = {}
    for aspect in appraisal.ASPECTS:
        answered = [r["aspects"][aspect] for r in honest if r.get("aspects")]
        answered = [a for a in answered if a is not None]
        found[f"{aspect}_rated"] = len(answered) or None
        found[f"{aspect}_mean"] = sum(answered) / len(answered) if answered else None
    return found


def test_wilson_lower_bound_is_the_textbook_one():
    assert appraisal.wilson_lower_bound(8, 10) == pytest.approx(0.4902, abs=1e-4)  # tables' value
    assert appraisal.wilson_lower_bound(0, 0) is None
    for s, n in [(0, 1), (1, 1), (3, 3), (97, 100), (290, 300), (1, 50)]:
        assert appraisal.wilson_lower_bound(s, n) == pytest.approx(
            textbook_wilson_low(s, n), rel=1e-12, abs=1e-15
        )
    # 3 of 3 is not better than 291 of 300
    assert appraisal.wilson_lower_bound(3, 3) < appraisal.wilson_lower_bound(291, 300)


def test_the_month_equals_the_truth_in_csv_and_xlsx(known_month, tmp_path, capsys):
    km = known_month
    csv_path, xlsx_path = tmp_path / "2026-11.csv", tmp_path / "2026-11.xlsx"
    common = ["2026-11", "--influx", km.influx.url, "--db", km.database, "--min-ratings", str(MIN)]
    assert appraisal_main([*common, "--out", str(csv_path)]) == 0
    assert appraisal_main([*common, "--out", str(xlsx_path)]) == 0
    assert "ranked" in capsys.readouterr().out
    want = expected_rows(in_month(km, "Asia/Shanghai"), MIN)
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == [name for name, _ in export.COLUMNS]
    assert table[0][:-3] == [
        "site",
        "staff",
        "rated",
        "satisfied",
        "satisfaction",
        "wilson_low",
        "rank",
        "poor",
        "skipped",
        "suspect",
        "reason_attitude",
        "reason_efficiency",
        "reason_expertise",
        "reason_environment",
        "reason_other",
        "attitude_rated",  # the aspect mode's, appended
        "attitude_mean",
        "efficiency_rated",
        "efficiency_mean",
    ]
    assert table[0][-3:] == ["scope", "staff_name", "excluded"]  # appended, in this order
    got = {(row[0], row[1]): dict(zip(table[0], row, strict=True)) for row in table[1:]}
    names = {c.staff: c.name for hall in km.scenario.halls for c in hall.clerks}  # as logged in
    stored = km.influx.query('SELECT "name", "staff" FROM "clerk"')  # the collector's points
    logins = {f["staff"]: f["name"] for f in stored}
    assert logins.items() <= names.items() and {k[1] for k in got if k[1]} <= set(logins)
    ended = int(appraisal.month_bounds("2026-11", "Asia/Shanghai")[1].timestamp()) * 10**9
    assert min(f["time"] for f in stored) >= ended  # at their receipt: after the simulated month
    assert {k: (got[k]["scope"], got[k]["staff_name"]) for k in got} == {  # the first after it
        (site, staff): (
            ("clerk" if site else "clerk_all") if staff else "hall",
            logins.get(staff, ""),
        )
        for site, staff in got
    }
    assert set(got) == set(want)
    assert len(table) - 1 == len(want)  # a clerk who moved counters is one row, under their number
    for key, figures in want.items():
        for name, value in figures.items():
            cell = got[key][name]
            if value is None:
                assert cell == "", (key, name)
            elif name in ("satisfaction", "wilson_low"):
                assert cell == f"{value:.6f}", (key, name)
            elif name.endswith("_mean"):
                assert cell == f"{value:.3f}", (key, name)
            else:
                assert cell == str(value), (key, name)
    station = km.scenario.halls[1].site  # in the aspect mode; the hall is not
    assert all(want[k]["attitude_rated"] is None for k in want if k[0] == km.hall)
    kind, slow = want[(station, "S01")], want[(station, "S02")]
    assert kind["efficiency_mean"] > slow["efficiency_mean"] and slow["attitude_mean"] > 4
    ranked = [k for k in want if want[k]["rank"]]
    assert ranked and any(k[1] and not want[k]["rank"] for k in want)  # one below the minimum
    assert sum(want[k]["suspect"] for k in want if k[0] and k[1]) == 3  # kept apart, never in rated
    sheet = openpyxl.load_workbook(xlsx_path).active
    cells = list(sheet.values)
    assert list(cells[0]) == [header for _, header in export.COLUMNS]
    assert cells[0][:3] == ("营业厅", "工号", "有效评价")
    assert cells[0][-3:] == ("范围", "姓名", "申诉剔除")
    kinds = [(row[0] == export.ALL_HALLS, bool(row[1])) for row in cells[1:]]
    scopes = {(False, True): "clerk", (True, True): "clerk_all", (False, False): "hall"}
    assert [row[-3] for row in cells[1:]] == [scopes[kind] for kind in kinds]
    assert all((row[-2] is None) == (not row[1]) for row in cells[1:])  # every clerk named
    assert all(row[-1] == 0 for row in cells[1:])  # no appeal upheld in the known month
    halls_bold = [sheet.cell(i + 1, 1).font.bold for i, row in enumerate(cells) if i and not row[1]]
    assert halls_bold and all(halls_bold)  # a hall's row stands out under its clerks
    everywhere = [row[1] for row in cells if row[0] == export.ALL_HALLS]
    assert everywhere == sorted(k[1] for k in want if not k[0])  # last, by staff number
    for row in cells[1:]:
        figures = want[("" if row[0] == export.ALL_HALLS else row[0], row[1] or "")]
        assert row[2] == figures["rated"] and row[6] == figures["rank"]
        assert row[5] == (
            None if figures["wilson_low"] is None else pytest.approx(figures["wilson_low"])
        )


def test_month_edges_follow_the_time_zone(known_month):
    km = known_month
    for tz in ("Asia/Shanghai", "UTC"):
        rows = appraisal.compute(km.influx, "2026-11", tz, MIN)
        want = expected_rows(in_month(km, tz), MIN)
        assert {(r.site or "", r.staff or ""): r.rated for r in rows} == {
            k: v["rated"] for k, v in want.items()
        }
    shanghai = {(r["device"], r["seq"]) for r in in_month(km, "Asia/Shanghai")}
    utc = {(r["device"], r["seq"]) for r in in_month(km, "UTC")}
    # 07:00 to 08:00 local on 1 November is October in UTC, and on 1 December November
    assert shanghai - utc and utc - shanghai
    october = appraisal.compute(km.influx, "2026-10", "Asia/Shanghai", MIN)
    assert sum(r.rated for r in october if r.staff is None) == sum(
        1
        for r in km.truth
        if r["cause"] != "self_rating"
        and r["score"] is not None
        and r["ts"] < dt.datetime(2026, 11, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000
    )


def test_a_rerun_overwrites_and_the_dashboard_reads_the_month(known_month):
    km = known_month
    month = "2026-11"
    rows = appraisal.compute(km.influx, month, "Asia/Shanghai", MIN)
    appraisal.store(km.influx, month, "Asia/Shanghai", rows)
    everyone = appraisal.compute(km.influx, month, "Asia/Shanghai", 1)  # all ranked now
    appraisal.store(km.influx, month, "Asia/Shanghai", everyone)
    appraisal.store(km.influx, month, "Asia/Shanghai", rows)  # and back: no rank may linger
    stored = km.influx.query(f'SELECT count("rated") FROM appraisal WHERE "month" = \'{month}\'')
    assert stored[0]["count"] == len(rows)
    board = clerk_appraisal.DASHBOARD
    table = next(p for p in board.panels if p.title.startswith("员工月度考核"))
    when = TimeRange(0, 2**41, {"month": month, "site": ("$__all",), "staff": ("$__all",)})
    found = km.influx.query(expand(table.queries[0].influxql, when))
    by_clerk = {(r.site, r.staff): r for r in rows if r.scope == "clerk"}
    assert {(f["site"], f["staff"]) for f in found} == set(by_clerk)
    for f in found:
        r = by_clerk[(f["site"], f["staff"])]
        assert (f["有效评价"], f["排名"], f["可疑"]) == (r.rated, r.rank, r.counts["suspect"])
        assert f["满意率"] == pytest.approx((r.satisfaction or 0) * 100)
        for aspect, name in appraisal.ASPECT_NAMES.items():
            assert f[name] == r.aspect_mean(aspect), (r.staff, name)
    heat = next(p for p in board.panels if p.title.startswith("时段热力"))
    cells = km.influx.query(expand(heat.queries[0].influxql, when))
    assert sum(v or 0 for c in cells for k, v in c.items() if k.startswith("周")) == sum(
        r.rated for r in rows if r.scope == "clerk"
    )
    across = next(p for p in board.panels if p.title.startswith("跨厅汇总"))
    found = km.influx.query(expand(across.queries[0].influxql, when))
    assert {f["staff"]: (f["有效评价"], f["排名"]) for f in found} == {
        r.staff: (r.rated, r.rank) for r in rows if r.scope == "clerk_all"
    }


def test_bad_arguments_are_refused(known_month, capsys):
    km = known_month
    db = ["--influx", km.influx.url, "--db", km.database]
    assert appraisal_main(["2026-13", *db]) == 2
    assert appraisal_main(["2026-11", *db, "--tz", "Mars/Olympus"]) == 2
    with pytest.raises(SystemExit):
        appraisal_main(["2026-11", *db, "--out", "month.pdf"])
    assert appraisal_main(["2026-11", "--influx", "http://127.0.0.1:9", "--db", "x"]) == 1
    assert "svc-appraisal" in capsys.readouterr().err


def test_previous_month_is_taken_in_the_halls_time_zone():
    just_after = dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)  # 1 December 00:30 in Shanghai
    assert appraisal.previous_month("Asia/Shanghai", just_after) == "2026-11"
    assert appraisal.previous_month("UTC", just_after) == "2026-10"
    assert appraisal.previous_month("UTC", dt.datetime(2027, 1, 5, tzinfo=dt.UTC)) == "2026-12"


def test_the_timer_runs_last_month_into_a_file_named_by_it(known_month, tmp_path, capsys):
    km = known_month
    unit = (Path(__file__).parent.parent / "collector" / "svc-appraisal.service").read_text()
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert " previous " in command and "{month}" in command
    out = tmp_path / "appraisal-{month}.csv"
    db = ["--influx", km.influx.url, "--db", km.database]
    assert appraisal_main(["previous", *db, "--out", str(out)]) == 0
    month = appraisal.previous_month("Asia/Shanghai")
    assert (tmp_path / f"appraisal-{month}.csv").is_file()
    assert f"{month} (Asia/Shanghai)" in capsys.readouterr().out


def test_the_heat_map_folds_the_month_onto_hours_and_weekdays(known_month):
    km = known_month
    appraisal.store(km.influx, "2026-11", "Asia/Shanghai", appraisal.compute(km.influx, "2026-11"))
    heat = next(p for p in clerk_appraisal.DASHBOARD.panels if p.title.startswith("时段热力"))
    zone = ZoneInfo("Asia/Shanghai")
    for staff in ("K01", "S02"):
        when = TimeRange(0, 2**41, {"month": "2026-11", "site": ("$__all",), "staff": (staff,)})
        cells = {
            (day, int(row["hour"])): value
            for row in km.influx.query(expand(heat.queries[0].influxql, when))
            for day, value in row.items()
            if day.startswith("周") and value
        }
        want: dict[tuple[str, int], int] = defaultdict(int)
        for r in in_month(km, "Asia/Shanghai"):
            if r["staff"] == staff and r["score"] is not None and r["cause"] != "self_rating":
                local = dt.datetime.fromtimestamp(r["ts"] / 1000, zone)
                want[(clerk_appraisal.WEEKDAYS[local.isoweekday() - 1], local.hour)] += 1
        assert cells == dict(want) and len(cells) > 5


@pytest.fixture
def own_month(influxdb, database) -> InfluxHttp:
    """A database of the test's own, holding only the ratings the test stores."""
    influx = InfluxHttp(influxdb.url, database)
    influx.ensure_database()
    return influx


def store_ratings(
    influx: InfluxHttp,
    site: str,
    staff: str,
    satisfied: int,
    rated: int,
    day: dt.datetime = dt.datetime(2026, 11, 10, 9, tzinfo=SHANGHAI),
) -> None:
    """`rated` ratings of a clerk at a hall's terminal from `day` on, a minute apart, the first
    `satisfied` scoring 5 and the rest 1, stored as the collector stores them."""
    where = DeviceTopic(site, f"t-{staff.lower()}", "rating")
    first = int(day.timestamp() * 1000)
    lines = []
    for i in range(rated):
        ts = first + i * 60_000
        body = {**RATING_EXAMPLE, "seq": i + 1, "ts": ts, "staff": staff}
        body["score"] = 5 if i < satisfied else 1
        lines.append(rating.parse(where, json.dumps(body).encode()).point(ts + 100))
    influx.write(lines)


def exported(
    influx: InfluxHttp, month: str, min_ratings: int, folder: Path
) -> dict[tuple[str, str], dict[str, str]]:
    """svc-appraisal's CSV of the month, its rows in order by (site, staff)."""
    out = folder / f"{month}.csv"
    db = ["--influx", influx.url, "--db", influx.database, "--min-ratings", str(min_ratings)]
    assert appraisal_main([month, *db, "--out", str(out)]) == 0
    with out.open(encoding="utf-8-sig", newline="") as f:
        return {(row["site"], row["staff"]): row for row in csv.DictReader(f)}


def test_equal_figures_share_a_rank(own_month, tmp_path):
    """Competition ranking: clerks with the same wilson_low and rated (so the same satisfied)
    share a rank and the next rank skips as many; a bound of 0 is 0 exactly, so rated orders
    clerks none of whose customers were satisfied."""
    for site, staff, satisfied, rated in [
        ("hall-a", "K01", 10, 10),
        ("hall-a", "K02", 9, 10),
        ("hall-b", "K03", 9, 10),  # equal to K02, in another hall
        ("hall-a", "K04", 8, 10),
        ("hall-b", "K05", 0, 31),
        ("hall-b", "K06", 0, 30),
        ("hall-a", "K07", 5, 5),  # under the minimum
    ]:
        store_ratings(own_month, site, staff, satisfied, rated)
    got = exported(own_month, "2026-11", 10, tmp_path)
    ranks = {"K01": "1", "K02": "2", "K03": "2", "K04": "4", "K05": "5", "K06": "6", "K07": ""}
    assert {staff: row["rank"] for (site, staff), row in got.items() if site and staff} == ranks
    assert got[("hall-b", "K06")]["wilson_low"] == "0.000000"  # not -0.000000
    assert {staff: row["rank"] for (site, staff), row in got.items() if not site} == ranks
    board = next(p for p in clerk_appraisal.DASHBOARD.panels if p.title.startswith("员工月度考核"))
    found = own_month.query(expand(board.queries[0].influxql, TimeRange(0, 2**41, EVERYONE)))
    assert {f["staff"]: f["排名"] for f in found} == {
        k: int(v) if v else None for k, v in ranks.items()
    }


def test_a_clerk_in_several_halls_has_a_row_over_all_of_them(own_month, tmp_path):
    """20 + 20 ratings in two halls: under the minimum of 30 in each hall, so not ranked there,
    and ranked on the 40 in the clerk's row over every hall."""
    store_ratings(own_month, "hall-a", "K01", 18, 20)
    store_ratings(own_month, "hall-b", "K01", 18, 20)
    store_ratings(own_month, "hall-a", "K02", 30, 35)
    got = exported(own_month, "2026-11", 30, tmp_path)
    assert list(got) == [  # each hall's clerks and the hall, then every clerk over all halls
        ("hall-a", "K01"),
        ("hall-a", "K02"),
        ("hall-a", ""),
        ("hall-b", "K01"),
        ("hall-b", ""),
        ("", "K01"),
        ("", "K02"),
    ]
    figures = {key: (row["rated"], row["satisfied"], row["rank"]) for key, row in got.items()}
    assert figures == {
        ("hall-a", "K01"): ("20", "18", ""),
        ("hall-a", "K02"): ("35", "30", "1"),
        ("hall-a", ""): ("55", "48", ""),
        ("hall-b", "K01"): ("20", "18", ""),
        ("hall-b", ""): ("20", "18", ""),
        ("", "K01"): ("40", "36", "1"),  # 0.9 of 40 is ahead of 30 of 35
        ("", "K02"): ("35", "30", "2"),
    }
    board = clerk_appraisal.DASHBOARD
    when = TimeRange(0, 2**41, EVERYONE)
    sites = own_month.query(expand(board.variables[1].influxql, when))
    assert [s["value"] for s in sites] == ["hall-a", "hall-b"]  # no hall made up for them
    stored = own_month.query(
        'SELECT "rated", "rank" FROM appraisal WHERE "scope" = \'clerk_all\' GROUP BY *'
    )
    assert {(s["site"], s["staff"], s["rated"], s["rank"]) for s in stored} == {
        ("", "K01", 40, 1),
        ("", "K02", 35, 2),
    }
    table = next(p for p in board.panels if p.title.startswith("员工月度考核"))
    found = own_month.query(expand(table.queries[0].influxql, when))
    assert {(f["site"], f["staff"], f["排名"]) for f in found} == {
        ("hall-a", "K01", None),
        ("hall-a", "K02", 1),
        ("hall-b", "K01", None),
    }
    across = next(p for p in board.panels if p.title.startswith("跨厅汇总"))
    found = own_month.query(expand(across.queries[0].influxql, when))
    assert {f["staff"]: (f["有效评价"], f["排名"]) for f in found} == {
        "K01": (40, 1),
        "K02": (35, 2),
    }
    halls = next(p for p in board.panels if p.title.startswith("营业厅对比"))
    found = own_month.query(expand(halls.queries[0].influxql, when))
    assert {f["site"]: f["有效评价"] for f in found} == {"hall-a": 55, "hall-b": 20}


def test_each_clerk_row_carries_the_latest_name_the_logins_gave(own_month, tmp_path):
    """`scope` (the row's own: clerk, clerk_all, hall) and `staff_name` appended to the CSV and
    the XLSX: a clerk row's name is the latest the collector stored before the month's end for
    the staff number in the row's hall, and in any hall for the row over every hall (whenever
    it came before then: a name is not the month's, and a later one is not the month's
    either); with none by then, the first after (logins the collector stored only after the
    month); empty for a hall's row and a clerk no login ever named. The stored appraisal is as
    it was."""
    store_ratings(own_month, "hall-a", "K01", 9, 10)
    store_ratings(own_month, "hall-b", "K01", 9, 10)
    store_ratings(own_month, "hall-a", "K02", 9, 10)
    earlier = int(dt.datetime(2026, 10, 3, 9, tzinfo=SHANGHAI).timestamp()) * 10**9
    end = int(dt.datetime(2026, 12, 1, tzinfo=SHANGHAI).timestamp()) * 10**9  # the month's end
    logins = [
        ("hall-a", "K01", "张敏", earlier),  # a month before
        ("hall-a", "K01", "张敏敏", earlier + 10**9),  # renamed in hall-a
        ("hall-b", "K01", "Zhang Min", end - 10**9),  # and the latest of all, in hall-b
        ("hall-b", "K09", "赵六", earlier),  # nobody rated them
        ("hall-a", "K01", "李华", end),  # after the month: K01 is someone else's number now
        ("hall-b", "K01", "李华", end + 10**9),
        ("hall-a", "K02", "王五", end + 10**9),  # named only after the month
    ]
    own_month.write([clerk.Login(*login[:3]).point(login[3]) for login in logins])
    got = exported(own_month, "2026-11", 10, tmp_path)
    assert {key: (row["scope"], row["staff_name"]) for key, row in got.items()} == {
        ("hall-a", "K01"): ("clerk", "张敏敏"),
        ("hall-a", "K02"): ("clerk", "王五"),
        ("hall-a", ""): ("hall", ""),
        ("hall-b", "K01"): ("clerk", "Zhang Min"),
        ("hall-b", ""): ("hall", ""),
        ("", "K01"): ("clerk_all", "Zhang Min"),
        ("", "K02"): ("clerk_all", "王五"),
    }
    rows = appraisal.compute(own_month, "2026-11", min_ratings=10)
    assert [r.scope for r in rows] == [row["scope"] for row in got.values()]  # one rule
    with (tmp_path / "2026-11.csv").open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f))
    assert header[:3] == ["site", "staff", "rated"] and header[-3:-1] == ["scope", "staff_name"]
    assert header[-5:-3] == ["efficiency_rated", "efficiency_mean"]  # the older columns first
    db = ["--influx", own_month.url, "--db", own_month.database, "--min-ratings", "10"]
    assert appraisal_main(["2026-11", *db, "--out", str(tmp_path / "2026-11.xlsx")]) == 0
    cells = list(openpyxl.load_workbook(tmp_path / "2026-11.xlsx").active.values)
    assert cells[0][-3:-1] == ("范围", "姓名")
    assert [(row[0], row[1], *row[-3:-1]) for row in cells[1:]] == [
        ("hall-a", "K01", "clerk", "张敏敏"),
        ("hall-a", "K02", "clerk", "王五"),
        ("hall-a", None, "hall", None),
        ("hall-b", "K01", "clerk", "Zhang Min"),
        ("hall-b", None, "hall", None),
        (export.ALL_HALLS, "K01", "clerk_all", "Zhang Min"),
        (export.ALL_HALLS, "K02", "clerk_all", "王五"),
    ]
    fields = own_month.query('SHOW FIELD KEYS FROM "appraisal"')
    assert fields and not any("name" in f["fieldKey"] for f in fields)
    tags = own_month.query('SHOW TAG KEYS FROM "appraisal"')
    assert {t["tagKey"] for t in tags} == {"month", "scope", "site", "staff"}


def test_a_name_is_written_as_text_without_its_control_characters(own_month, tmp_path):
    """Whatever a tools account set as a name, the month's files are written and show it as
    text: control characters (which an XLSX cannot hold) left out, and a name a spreadsheet
    would run as a formula kept text (after an apostrophe in the CSV, a string cell in the
    XLSX), in every text cell alike."""
    names = {
        "K01": ("Zhang\x0bMin", "ZhangMin"),
        "K02": ('=HYPERLINK("http://x.cn/","张敏")', """'=HYPERLINK("http://x.cn/","张敏")"""),
        "K03": ("+86 123", "'+86 123"),
        "K04": ("@SUM(A1)", "'@SUM(A1)"),
        "K05": ("-1+2", "'-1+2"),
        "K06": ("\x07\x1b\x7f", ""),  # nothing left: no name
        "K07": ("\t李\r华\x85", "李华"),  # a C1 control character too
    }
    within = int(dt.datetime(2026, 11, 20, 9, tzinfo=SHANGHAI).timestamp()) * 10**9
    for staff in names:
        store_ratings(own_month, "hall-a", staff, 9, 10)
    own_month.write(
        [clerk.Login("hall-a", staff, name[0]).point(within) for staff, name in names.items()]
    )
    got = exported(own_month, "2026-11", 10, tmp_path)
    for staff, (_, shown) in names.items():
        assert got[("hall-a", staff)]["staff_name"] == shown, staff
        assert got[("", staff)]["staff_name"] == shown, staff
    db = ["--influx", own_month.url, "--db", own_month.database, "--min-ratings", "10"]
    assert appraisal_main(["2026-11", *db, "--out", str(tmp_path / "2026-11.xlsx")]) == 0
    sheet = openpyxl.load_workbook(tmp_path / "2026-11.xlsx").active
    header = [c.value for c in sheet[1]]
    column = header.index("姓名") + 1
    cells = {
        (sheet.cell(i, 1).value, sheet.cell(i, 2).value): sheet.cell(i, column)
        for i in range(2, sheet.max_row + 1)
    }
    for staff, (_, shown) in names.items():
        for site in ("hall-a", export.ALL_HALLS):
            cell = cells[(site, staff)]
            assert cell.value == (shown.removeprefix("'") or None), staff
            assert cell.value is None or cell.data_type == "s", staff  # never a formula
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_a_month_is_stored_in_one_spelling_whichever_is_given(own_month, tmp_path, capsys):
    """`2026-1` and `2026-01` are one month, stored as 2026-01: each run replaces the other's
    points, and those an earlier version stored under `2026-1`."""
    store_ratings(own_month, "hall-a", "K01", 3, 4, dt.datetime(2026, 1, 20, 9, tzinfo=SHANGHAI))
    january = int(dt.datetime(2026, 1, 1, tzinfo=SHANGHAI).timestamp()) * 10**9
    earlier = {"month": "2026-1", "scope": "hall", "site": "hall-a"}
    own_month.write([lineprotocol.line("appraisal", earlier, {"rated": 99}, january)])
    db = ["--influx", own_month.url, "--db", own_month.database]
    assert appraisal_main(["2026-1", *db, "--out", str(tmp_path / "{month}.csv")]) == 0
    assert appraisal_main(["2026-01", *db]) == 0
    assert capsys.readouterr().out.count("2026-01 (Asia/Shanghai)") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["2026-01.csv"]
    for measurement in ("appraisal", "appraisal_hours"):
        months = own_month.query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "month"')
        assert [m["value"] for m in months] == ["2026-01"], measurement
    stored = own_month.query('SELECT "rated" FROM appraisal WHERE "scope" = \'hall\'')
    assert [s["rated"] for s in stored] == [4]
    for month in ("2026-13", "2026-0", "2026-00", "2026-001", "26-01", "2026-1x"):
        assert appraisal_main([month, *db]) == 2, month
    assert "not like 2026-11" in capsys.readouterr().err
