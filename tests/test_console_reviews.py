"""Appeals and suspect review (#20), InfluxDB's side, on the real broker, collector and InfluxDB:
a decision written onto a stored rating (console/reviews.py) takes it out of its clerk's
svc-appraisal figures, the 员工考核 board and the export, or back into them; a copy the terminal
sends again changes none of it; a rating not stored yet is not found, and nothing is written."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import paho.mqtt.client as mqtt
import pytest

from collector.influx import InfluxError, InfluxHttp
from console import reviews
from dashboards.boards import clerk_appraisal
from dashboards.cli import appraisal_main
from dashboards.macros import TimeRange, expand
from tests.samples import RATING_EXAMPLE
from tests.servers import Acks
from tests.test_collector_service import DEVICE_TOPIC, dead_letters, publish

SITE, DEVICE = "sjz-yuhua", "ev-a1b2c3d4e5f6"  # DEVICE_TOPIC's terminal
MONTH = "2026-11"
START = dt.datetime(2026, 11, 10, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
# seq: minutes after START, score, reason, wait_ms, staff. A prompt pressed within 500 ms is
# suspect (fast_press); the gaps differ, so that no press looks regular or like a burst.
MONTH_RATINGS = {
    1: (0, 5, None, 2100, "E1023"),
    2: (7, 5, None, 1830, "E1023"),
    3: (19, 4, None, 2500, "E1023"),
    4: (26, 3, None, 3100, "E1023"),
    5: (41, 1, "attitude", 1200, "E1023"),  # appealed: 恶意差评
    6: (60, 2, "efficiency", 2800, "E1023"),
    7: (75, 5, None, 120, "E1023"),  # suspect: cleared
    8: (93, 4, None, 90, "E1023"),  # suspect: confirmed
    9: (110, 5, None, 1500, "E2000"),  # another clerk at the counter
    10: (128, None, None, None, "E2000"),  # a window closed unrated
}
FIGURES = ("rated", "satisfied", "poor", "suspect", "excluded", "skipped", "reason_attitude")
# the month as the collector judged it: (rated, satisfied, poor, suspect, excluded, skipped,
# reason_attitude) of E1023, E2000 and the hall
BEFORE = {
    "E1023": (6, 3, 2, 2, 0, 0, 1),
    "E2000": (1, 1, 0, 0, 0, 1, 0),
    "": (7, 4, 2, 2, 0, 1, 1),
}
BOARD = {"month": MONTH, "site": ("$__all",), "staff": ("$__all",)}  # as the board opens
CLERK = "审核员"  # the appraisal staff's console user


def body(seq: int) -> bytes:
    minutes, score, reason, wait_ms, staff = MONTH_RATINGS[seq]
    ts = int(START.timestamp() * 1000) + minutes * 60_000
    changes = {"seq": seq, "ts": ts, "score": score, "reason": reason, "wait_ms": wait_ms}
    return json.dumps({**RATING_EXAMPLE, **changes, "staff": staff}).encode()


def send(publisher: mqtt.Client, topic_root: str, acks: Acks, seqs: list[int], times: int) -> None:
    """The terminal sends these ratings, and each is acknowledged (the `times`th time)."""
    for seq in seqs:
        publish(publisher, DEVICE_TOPIC.format(root=topic_root), body(seq))
    assert all(acks.wait(seq, times) for seq in seqs)


def appraised(influx: InfluxHttp, folder: Path) -> dict[str, tuple[int, ...]]:
    """svc-appraisal's run for the month (computed, stored, exported): FIGURES by staff ("" for
    the hall) as its CSV has them, after checking that its XLSX, its stored points and the
    员工考核 board show the same suspect and excluded counts."""
    db = ["--influx", influx.url, "--db", influx.database, "--min-ratings", "1"]
    assert appraisal_main([MONTH, *db, "--out", str(folder / "month.csv")]) == 0
    with (folder / "month.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = {row["staff"]: row for row in csv.DictReader(f) if row["site"] == SITE}
    got = {staff: tuple(int(row[name]) for name in FIGURES) for staff, row in rows.items()}
    assert appraisal_main([MONTH, *db, "--out", str(folder / "month.xlsx")]) == 0
    sheet = list(openpyxl.load_workbook(folder / "month.xlsx").active.values)
    assert sheet[0][-1] == "申诉剔除"  # the last column, after every one before
    assert {row[1] or "": row[-1] for row in sheet[1:] if row[0] == SITE} == {
        staff: figures[4] for staff, figures in got.items()
    }
    clerks = {staff: figures[3:5] for staff, figures in got.items() if staff}  # suspect, excluded
    points = influx.query(
        'SELECT "suspect", "excluded" FROM appraisal '
        f'WHERE "month" = \'{MONTH}\' AND "scope" = \'clerk\' GROUP BY "staff"'
    )
    assert {f["staff"]: (f["suspect"], f["excluded"]) for f in points} == clerks
    board = next(p for p in clerk_appraisal.DASHBOARD.panels if p.title.startswith("员工月度考核"))
    shown = influx.query(expand(board.queries[0].influxql, TimeRange(0, 2**41, BOARD)))
    assert {f["staff"]: (f["可疑"], f["申诉剔除"]) for f in shown} == clerks
    return got


def stored(influx: InfluxHttp, seq: int) -> list[reviews.StoredPoint]:
    return reviews.find_points(influx, SITE, DEVICE, seq)


def test_an_upheld_appeal_takes_the_rating_out_of_its_clerks_figures(
    collector, publisher, influxdb, database, topic_root, acks, tmp_path
):
    """E1023's poor rating, appealed as malicious and upheld: out of rated, poor and its
    reason, counted as excluded and not as suspect; E2000's figures as they were. The point
    stays, as the collector stored it, with the decision on it."""
    send(publisher, topic_root, acks, list(MONTH_RATINGS), 1)
    influx = InfluxHttp(influxdb.url, database)
    assert appraised(influx, tmp_path) == BEFORE
    [before] = stored(influx, 5)
    assert reviews.uphold_appeal(influx, SITE, DEVICE, 5, ground="malicious", user=CLERK)
    assert appraised(influx, tmp_path) == {
        "E1023": (5, 3, 1, 2, 1, 0, 0),
        "E2000": BEFORE["E2000"],
        "": (6, 4, 1, 2, 1, 1, 0),
    }
    [after] = stored(influx, 5)
    assert (after.tags, after.time_ns) == (before.tags, before.time_ns)
    assert after.tags["reason"] == "attitude" and after.tags["staff"] == "E1023"
    assert after.fields == {
        **before.fields,
        "suspect": 1,
        "suspect_why": "appeal_upheld",
        "excluded": 1,
        "review": "upheld:malicious",
        "reviewed_by": CLERK,
    }
    assert len(influx.query("SELECT * FROM rating")) == len(MONTH_RATINGS)  # no point added


def test_a_copy_the_terminal_sends_again_leaves_the_rating_excluded(
    collector, publisher, influxdb, database, topic_root, acks, tmp_path
):
    """Every rating of the month sent again after the appeal was upheld: each acknowledged,
    none written again (a copy's content is the message's, not the console's fields), so the
    appealed rating is still one point with its decision, and the figures are unchanged."""
    send(publisher, topic_root, acks, list(MONTH_RATINGS), 1)
    influx = InfluxHttp(influxdb.url, database)
    assert reviews.uphold_appeal(influx, SITE, DEVICE, 5, ground="mistaken", user=CLERK)
    [decided] = stored(influx, 5)
    figures = appraised(influx, tmp_path)
    send(publisher, topic_root, acks, list(MONTH_RATINGS), 2)  # acknowledged once handled
    assert stored(influx, 5) == [decided]
    assert decided.fields["review"] == "upheld:mistaken" and decided.fields["excluded"] == 1
    assert len(influx.query("SELECT * FROM rating")) == len(MONTH_RATINGS)
    assert appraised(influx, tmp_path) == figures
    assert figures["E1023"][:5] == (5, 3, 1, 2, 1)
    assert dead_letters(collector) == []  # copies, not conflicts
    events = [json.loads(line) for line in collector.log().splitlines() if line.startswith("{")]
    batches = [e for e in events if e["event"] == "stored"]
    assert [sum(e[kind] for e in batches) for kind in ("ratings", "copies")] == [10, 10]


def test_a_cleared_suspect_counts_again_and_a_confirmed_one_does_not(
    collector, publisher, influxdb, database, topic_root, acks, tmp_path
):
    send(publisher, topic_root, acks, list(MONTH_RATINGS), 1)
    influx = InfluxHttp(influxdb.url, database)
    assert reviews.clear_suspect(influx, SITE, DEVICE, 7, user="店长")
    assert reviews.confirm_suspect(influx, SITE, DEVICE, 8, user="店长")
    assert appraised(influx, tmp_path) == {
        "E1023": (7, 4, 2, 1, 0, 0, 1),  # the cleared 5 counts; the confirmed 4 does not
        "E2000": BEFORE["E2000"],
        "": (8, 5, 2, 1, 0, 1, 1),
    }
    [cleared], [confirmed] = stored(influx, 7), stored(influx, 8)
    assert (cleared.fields["suspect"], cleared.fields["review"]) == (0, "cleared")
    assert (confirmed.fields["suspect"], confirmed.fields["review"]) == (1, "confirmed")
    for point in (cleared, confirmed):  # the collector's rule stays on record
        assert point.fields["suspect_why"] == "fast_press" and point.fields["reviewed_by"] == "店长"
    assert reviews.confirm_suspect(influx, SITE, DEVICE, 7, user="店长")  # a change of mind
    assert appraised(influx, tmp_path)["E1023"][:4] == (6, 3, 2, 2)


def test_a_verdict_is_refused_on_an_excluded_or_unflagged_rating(
    collector, publisher, influxdb, database, topic_root, acks
):
    """An upheld appeal wins: neither verdict is written on the rating it excluded (clearing
    it would count it again), nor on a rating the collector never flagged."""
    send(publisher, topic_root, acks, [1, 5, 7], 1)
    influx = InfluxHttp(influxdb.url, database)
    assert reviews.uphold_appeal(influx, SITE, DEVICE, 7, ground="device_fault", user=CLERK)
    points = {seq: stored(influx, seq) for seq in (1, 5, 7)}
    for seq in (1, 5, 7):
        for verdict in (reviews.clear_suspect, reviews.confirm_suspect):
            with pytest.raises(reviews.ReviewRefused):
                verdict(influx, SITE, DEVICE, seq, user="店长")
    assert {seq: stored(influx, seq) for seq in (1, 5, 7)} == points


def test_a_rating_not_stored_yet_is_not_found_and_nothing_is_written(
    collector, publisher, influxdb, database, topic_root, acks
):
    """The console keeps such a decision pending and tries again: once the terminal's rating
    is stored, the same call writes it."""
    influx = InfluxHttp(influxdb.url, database)
    influx.ensure_database()
    assert not reviews.uphold_appeal(influx, SITE, DEVICE, 5, ground="other", user=CLERK)
    send(publisher, topic_root, acks, [1, 7], 1)
    assert not reviews.uphold_appeal(influx, SITE, DEVICE, 5, ground="other", user=CLERK)
    assert not reviews.clear_suspect(influx, SITE, DEVICE, 8, user="店长")
    assert not reviews.confirm_suspect(influx, SITE, DEVICE, 8, user="店长")
    assert sorted(r["seq"] for r in influx.query("SELECT * FROM rating")) == [1, 7]
    assert "review" not in stored(influx, 7)[0].fields
    send(publisher, topic_root, acks, [5], 1)
    assert reviews.uphold_appeal(influx, SITE, DEVICE, 5, ground="other", user=CLERK)
    [point] = stored(influx, 5)
    assert (point.fields["excluded"], point.fields["review"]) == (1, "upheld:other")


def test_an_outage_raises_for_the_caller_to_retry_and_bad_arguments_are_refused():
    """Nothing is queried for a key, ground or user the console could not have meant."""
    down = InfluxHttp("http://127.0.0.1:9", "service_quality")
    with pytest.raises(InfluxError) as raised:
        reviews.uphold_appeal(down, SITE, DEVICE, 5, ground="other", user=CLERK)
    assert not raised.value.permanent
    for site, device, seq in [
        ("x' OR ''='", DEVICE, 5),
        (SITE, 'ev"1', 5),
        ("Sjz-yuhua", DEVICE, 5),
        (SITE, DEVICE, 0),
        (SITE, DEVICE, True),
    ]:
        with pytest.raises(ValueError):
            reviews.find_points(down, site, device, seq)
    with pytest.raises(ValueError):
        reviews.uphold_appeal(down, SITE, DEVICE, 5, ground="bored", user=CLERK)
    for user in ("", " 审核员", "?", "a\nb"):
        with pytest.raises(ValueError):
            reviews.clear_suspect(down, SITE, DEVICE, 5, user=user)
