"""The console's reads of InfluxDB (console/figures.py) on the known month, against its ground
truth and svc-appraisal, and on a few points of each test's own where a case needs them."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector import device, rating
from collector.influx import InfluxHttp
from collector.topics import DeviceTopic
from console import figures
from console.figures import Tally
from dashboards import appraisal
from tests.known_month import KnownMonth

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER = dt.datetime(2026, 11, 1, tzinfo=SHANGHAI)
LATER = dt.datetime(2027, 1, 1, tzinfo=SHANGHAI)  # a now long after the known month
MIN = 200  # the appraisal's minimum sample in tests/test_appraisal.py: some clerks are under it


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def tally(ratings: list[dict[str, Any]]) -> Tally:
    """The figures of these ratings of the truth, as the appraisal counts them."""
    honest = [r for r in ratings if r["cause"] != "self_rating" and r["score"] is not None]
    return Tally(
        rated=len(honest),
        satisfied=sum(r["score"] >= 4 for r in honest),
        poor=sum(r["score"] <= 2 for r in honest),
        skipped=sum(r["score"] is None for r in ratings),
        suspect=sum(r["cause"] == "self_rating" and r["score"] is not None for r in ratings),
    )


def between(km: KnownMonth, site: str, since: dt.datetime, until: dt.datetime) -> list[dict]:
    return [r for r in km.truth if r["site"] == site and ms(since) <= r["ts"] < ms(until)]


@pytest.fixture
def own(influxdb, database) -> InfluxHttp:
    """A database of the test's own, for points the known month does not make."""
    influx = InfluxHttp(influxdb.url, database)
    influx.ensure_database()
    return influx


@pytest.mark.parametrize(
    "now",
    [
        # 1 November: 07:00 to 08:00 local is still October in UTC
        dt.datetime(2026, 11, 1, 8, 30, tzinfo=SHANGHAI),
        dt.datetime(2026, 11, 18, 1, 30, tzinfo=dt.UTC),  # 09:30 local: the 18th's whole morning
    ],
)
def test_the_day_per_counter_clerk_and_hall_equals_the_truth(known_month, now):
    km = known_month
    midnight = now.astimezone(SHANGHAI).replace(hour=0, minute=0)
    for site in (km.hall, km.scenario.halls[1].site):
        day = between(km, site, midnight, now)
        found = figures.today(km.influx, site, SHANGHAI, now)
        assert (found.site, found.since, found.until) == (site, midnight, now)
        assert found.hall == tally(day) and found.hall.rated > 10
        by_counter: dict[str, list[dict]] = defaultdict(list)
        by_clerk: dict[str, list[dict]] = defaultdict(list)
        for r in day:
            by_counter[r["counter"]].append(r)
            if r["staff"]:
                by_clerk[r["staff"]].append(r)
        assert found.counters == {c: tally(rs) for c, rs in sorted(by_counter.items())}
        assert found.clerks == {s: tally(rs) for s, rs in sorted(by_clerk.items())}
        assert found.hall.skipped or site != km.hall  # the prompt-mode hall's closed windows
        for each in [found.hall, *found.counters.values(), *found.clerks.values()]:
            assert each.satisfaction == (each.satisfied / each.rated if each.rated else None)


def test_a_clerk_rating_themselves_is_suspect_and_never_rated(known_month):
    km = known_month
    self_rated = [r for r in km.truth if r["cause"] == "self_rating"]
    day = dt.datetime.fromtimestamp(self_rated[0]["ts"] / 1000, SHANGHAI).date()
    now = dt.datetime.combine(day, dt.time(23), SHANGHAI)
    found = figures.today(km.influx, km.hall, SHANGHAI, now)
    midnight = dt.datetime.combine(day, dt.time(), SHANGHAI)
    assert found.hall == tally(between(km, km.hall, midnight, now))
    assert found.hall.suspect == found.counters["01"].suspect == len(self_rated) == 3


def test_a_day_with_nothing_rated_has_no_satisfaction(known_month):
    before_opening = dt.datetime(2026, 11, 3, 6, 0, tzinfo=SHANGHAI)
    found = figures.today(known_month.influx, known_month.hall, SHANGHAI, before_opening)
    assert found.hall == Tally() and found.hall.satisfaction is None
    assert found.counters == found.clerks == {}


def test_the_wall_agrees_with_svc_appraisal_for_the_known_month(known_month):
    km = known_month
    rows = appraisal.compute(km.influx, "2026-11", "Asia/Shanghai", MIN)
    month = between(km, km.hall, NOVEMBER, dt.datetime(2026, 12, 1, tzinfo=SHANGHAI))
    month += between(
        km, km.scenario.halls[1].site, NOVEMBER, dt.datetime(2026, 12, 1, tzinfo=SHANGHAI)
    )
    shown = under = 0
    for site in (km.hall, km.scenario.halls[1].site):
        wall = figures.month_wall(km.influx, site, NOVEMBER, LATER, MIN)
        assert (wall.since, wall.until) == (NOVEMBER, dt.datetime(2026, 12, 1, tzinfo=SHANGHAI))
        clerks = {r.staff: r for r in rows if r.scope == "clerk" and r.site == site and r.rated}
        assert set(wall.clerks) == set(clerks) and len(clerks) >= 2
        for staff, found in wall.clerks.items():
            row = clerks[staff]
            assert (found.rated, found.satisfied) == (row.rated, row.counts["satisfied"])
            assert found.satisfaction == row.satisfaction
            assert (found.stars is None) == (row.rank is None)  # the same minimum sample
            scores = [
                r["score"]
                for r in month
                if r["site"] == site
                and r["staff"] == staff
                and r["cause"] != "self_rating"
                and r["score"] is not None
            ]
            mean = Fraction(sum(scores), len(scores))
            assert found.mean_score == pytest.approx(float(mean), rel=1e-15)
            if found.stars is None:
                under += 1
            else:
                shown += 1
                halves = int(2 * mean + Fraction(1, 2))  # floor: the nearest half, halves up
                assert found.stars == halves / 2 and 1 <= found.stars <= 5
    assert shown and under  # a short shift leaves a clerk under the minimum


def test_the_wall_counts_the_month_to_date(known_month):
    km = known_month
    now = dt.datetime(2026, 11, 15, 8, 20, tzinfo=SHANGHAI)
    wall = figures.month_wall(km.influx, km.hall, NOVEMBER, now, 1)
    assert wall.until == now
    by_clerk: dict[str, list[dict]] = defaultdict(list)
    for r in between(km, km.hall, NOVEMBER, now):
        if r["staff"]:
            by_clerk[r["staff"]].append(r)
    want = {s: tally(rs) for s, rs in sorted(by_clerk.items()) if tally(rs).rated}
    assert {s: (c.rated, c.satisfied) for s, c in wall.clerks.items()} == {
        s: (t.rated, t.satisfied) for s, t in want.items()
    }
    assert all(c.stars is not None for c in wall.clerks.values())  # a minimum of 1


def test_the_wall_wants_the_first_instant_of_a_month_in_a_named_zone(known_month):
    km = known_month
    for start in (
        dt.datetime(2026, 11, 2, tzinfo=SHANGHAI),
        dt.datetime(2026, 11, 1, tzinfo=dt.UTC),  # a fixed offset, not the hall's zone
    ):
        with pytest.raises(ValueError, match="month_start"):
            figures.month_wall(km.influx, km.hall, start, LATER, MIN)


def test_terminals_of_the_known_month_went_offline_with_one_firmware(known_month):
    km = known_month
    since = dt.datetime.fromtimestamp(km.real_from_ms / 1000, dt.UTC)
    for hall in km.scenario.halls:
        found = figures.terminals(km.influx, hall.site, since)
        assert list(found) == sorted(c.device for c in hall.counters)
        assert {t.online for t in found.values()} == {False}  # their last wills
        assert len({t.fw for t in found.values()}) == 1 and None not in {
            t.fw for t in found.values()
        }
        assert all(t.dropped == t.stuck_keys == 0 for t in found.values())
        assert all(since <= t.last_seen for t in found.values())


def test_terminals_give_each_field_as_its_last_point_gave_it(own):
    def telemetry(site: str, device_id: str, at_s: int, **fields: Any) -> str:
        body = {"v": 1, "boot": 3, "uptime_s": 60, "rssi": -60, "heap_free": 40_000,
                "queue": 0, "fw": "1.2.0", "stuck_keys": [], "dropped": 0, **fields}  # fmt: skip
        where = DeviceTopic(site, device_id, "telemetry")
        return device.telemetry(where, json.dumps(body).encode(), at_s * 10**9).point()

    def state(site: str, device_id: str, at_s: int, **fields: Any) -> str:
        where = DeviceTopic(site, device_id, "state")
        report = device.state(where, json.dumps({"v": 1, **fields}).encode(), at_s * 10**9)
        assert report is not None
        return report.point()

    t0 = 1_795_000_000
    own.write(
        [
            telemetry("hall-a", "ev-1", t0, queue=4, rssi=-70, stuck_keys=[2], dropped=1),
            telemetry("hall-a", "ev-1", t0 + 60, queue=7, rssi=-55, heap_free=39_000),
            state("hall-a", "ev-1", t0 + 90, online=False),  # its last will: no other field
            state("hall-a", "ev-2", t0 + 10, online=True, fw="1.3.0", stuck_keys=[1, 4]),
            telemetry("hall-a", "ev-3", t0 - 3600),  # before `since`
            telemetry("hall-b", "ev-4", t0),  # another hall's
        ]
    )
    since = dt.datetime.fromtimestamp(t0 - 60, dt.UTC)
    found = figures.terminals(own, "hall-a", since)
    assert found == {
        "ev-1": figures.Terminal(
            "ev-1",
            last_seen=dt.datetime.fromtimestamp(t0 + 90, dt.UTC),
            online=False,
            queue=7,
            fw="1.2.0",
            stuck_keys=0,
            rssi=-55,
            heap_free=39_000,
            dropped=0,
        ),
        "ev-2": figures.Terminal(
            "ev-2",
            last_seen=dt.datetime.fromtimestamp(t0 + 10, dt.UTC),
            online=True,
            queue=None,  # a state point says nothing of its queue, radio or heap
            fw="1.3.0",
            stuck_keys=2,
            rssi=None,
            heap_free=None,
            dropped=None,
        ),
    }
    earlier = dt.datetime.fromtimestamp(t0 - 7200, dt.UTC)
    assert list(figures.terminals(own, "hall-a", earlier)) == ["ev-1", "ev-2", "ev-3"]
    assert figures.terminals(own, "hall-c", since) == {}


def test_poor_ratings_are_every_stored_poor_rating_once(known_month):
    km = known_month
    poor = {
        (r["site"], r["device"], r["seq"]): r
        for r in km.truth
        if r["score"] is not None and r["score"] <= 2
    }
    everything = figures.poor_ratings(km.influx, 0, 2**62)
    assert len(everything) == len(poor) > 50
    assert [p.time_ns for p in everything] == sorted(p.time_ns for p in everything)
    for found in everything:
        r = poor[(found.site, found.device, found.seq)]
        assert found == figures.PoorRating(
            r["site"],
            r["device"],
            r["seq"],
            time_ns=r["ts"] * 10**6 + r["seq"] % 10**6,
            undated=False,
            counter=r["counter"],
            staff=r["staff"],
            score=r["score"],
            reason=r["reason"],
            suspect=r["cause"] == "self_rating",
        )
    assert any(p.staff is None for p in everything) and any(p.reason for p in everything)
    # one hall's, and a range cut in two: each rating in exactly one half
    hall = figures.poor_ratings(km.influx, 0, 2**62, km.hall)
    assert hall == [p for p in everything if p.site == km.hall] and len(hall) < len(everything)
    middle = everything[len(everything) // 2].time_ns
    assert (
        figures.poor_ratings(km.influx, 0, middle) + figures.poor_ratings(km.influx, middle, 2**62)
        == everything
    )
    november = ms(NOVEMBER) * 10**6, ms(dt.datetime(2026, 12, 1, tzinfo=SHANGHAI)) * 10**6
    assert figures.poor_ratings(km.influx, *november) == [
        p for p in everything if november[0] <= p.time_ns < november[1]
    ]


def test_an_undated_poor_rating_stored_twice_is_given_once_at_its_first_receipt(own):
    def point(seq: int, ts: int | None, score: int | None, received_ms: int) -> str:
        message = {"v": 1, "seq": seq, "boot": 2, "ts": ts, "score": score, "counter": "03",
                   "staff": "E1023", "mode": "free", "wait_ms": None,
                   "reason": "attitude" if score and score <= 2 else None}  # fmt: skip
        parsed = rating.parse(DeviceTopic("hall-a", "ev-1", "rating"), json.dumps(message).encode())
        undated_ns = None if ts else parsed.undated_time_ns(received_ms)
        return parsed.point(received_ms, undated_ns)

    t0 = 1_795_000_000_000
    own.write(
        [
            point(7, None, 1, t0 + 500),  # two collectors at once: two points of seq 7
            point(7, None, 1, t0 + 800),
            point(8, t0 + 1000, 2, t0 + 1200),
            point(9, t0 + 2000, 5, t0 + 2100),  # not poor
            point(10, t0 + 3000, None, t0 + 3100),  # skipped
        ]
    )
    found = figures.poor_ratings(own, 0, 2**62, "hall-a")
    assert [(p.seq, p.time_ns, p.undated, p.score, p.reason) for p in found] == [
        (7, (t0 + 500) * 10**6 + 7, True, 1, "attitude"),
        (8, (t0 + 1000) * 10**6 + 8, False, 2, "attitude"),
    ]
    assert figures.poor_ratings(own, 0, 2**62, "hall-b") == []


@pytest.mark.parametrize("site", ["x' OR '1'='1", 'a" OR 1=1', "Hall-A", "", "a" * 33, "-a"])
def test_a_site_off_the_name_rule_never_reaches_a_query(site):
    nowhere = InfluxHttp("http://127.0.0.1:9", "none")  # a query would fail with InfluxError
    now = dt.datetime(2026, 11, 15, tzinfo=SHANGHAI)
    for read in (
        lambda: figures.today(nowhere, site, SHANGHAI, now),
        lambda: figures.month_wall(nowhere, site, NOVEMBER, now, MIN),
        lambda: figures.terminals(nowhere, site, now),
        lambda: figures.poor_ratings(nowhere, 0, 1, site),
    ):
        with pytest.raises(ValueError, match="name rule"):
            read()
