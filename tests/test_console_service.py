"""The console's service behind its pages, against the real InfluxDB: one case per poor
rating, whether its alert comes once, twice or never (the minute's reconciliation), and the
same after a resend; a bad alert is logged and let go; a decision InfluxDB could not take
waits and is delivered later."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector import lineprotocol
from collector.influx import InfluxHttp
from console import appeals, settings
from console.service import Service
from devstack import InfluxServer
from firmware import contract

ZONE = ZoneInfo("Asia/Shanghai")
SITE = "ha01"


@pytest.fixture
def service(influxdb: InfluxServer, database: str, tmp_path: Path) -> Iterator[Service]:
    chosen = settings.from_env(
        {
            "SVC_CONSOLE_DB": str(tmp_path / "console.db"),
            "SVC_CONSOLE_INFLUX_URL": influxdb.url,
            "SVC_CONSOLE_INFLUX_DB": database,
        }
    )
    InfluxHttp(influxdb.url, database).ensure_database()
    made = Service(chosen)
    yield made
    made.sender.stop()


def store_rating(service: Service, device: str, seq: int, pressed: dt.datetime, score: int) -> None:
    """A rating as the collector stores it (docs/contract.md's storage)."""
    ts = int(pressed.timestamp() * 1000)
    fields = {"score": score, "rated": 1, "seq": seq, "suspect": 0, **contract.score_classes(score)}
    tags = {"site": SITE, "device": device, "counter": "01", "staff": "E1001", "mode": "prompt"}
    line = lineprotocol.line("rating", tags, fields, contract.point_time_ns(ts, seq))
    service.influx.write([line])


def alert(device: str, seq: int, pressed: dt.datetime, score: int = 1) -> dict[str, object]:
    return {
        "v": 1, "kind": "poor_rating", "site": SITE, "device": device, "counter": "01",
        "staff": "E1001", "score": score, "reason": "attitude",
        "ts": int(pressed.timestamp() * 1000), "seq": seq,
    }  # fmt: skip


def cases(service: Service) -> list[sqlite3.Row]:
    return service.db.get().execute("SELECT * FROM poor_case ORDER BY id").fetchall()


def test_one_case_per_poor_rating_from_alerts_resends_and_the_reconciliation(service: Service):
    now = dt.datetime.now(ZONE).replace(microsecond=0)
    pressed = now - dt.timedelta(hours=1)
    store_rating(service, "t01", 7, pressed, 1)
    store_rating(service, "t01", 8, pressed + dt.timedelta(minutes=1), 5)
    store_rating(service, "t02", 3, pressed, 2)  # its alert was lost
    service.on_alert(SITE, alert("t01", 7, pressed))
    service.on_alert(SITE, alert("t01", 7, pressed))  # at least once: again
    assert [(c["device"], c["seq"], c["source"]) for c in cases(service)] == [("t01", 7, "alert")]
    assert service.reconcile() == 1
    assert service.reconcile() == 0
    found = [(c["device"], c["seq"], c["source"], c["score"]) for c in cases(service)]
    assert found == [("t01", 7, "alert", 1), ("t02", 3, "reconcile", 2)]
    service.on_alert(SITE, alert("t02", 3, pressed, 2))  # the lost alert, late: no second case
    store_rating(service, "t02", 3, pressed, 2)  # a resend that reached InfluxDB again
    assert service.reconcile() == 0
    assert len(cases(service)) == 2
    # a notification for each case, once (no channel here: nothing to send, nothing queued)
    assert service.db.get().execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_a_poor_rating_pressed_weeks_ago_that_arrives_now_gets_its_case(service: Service):
    """A terminal offline for weeks sends its queue: the hourly look back a month finds it."""
    old = dt.datetime.now(ZONE) - dt.timedelta(days=20)
    store_rating(service, "t03", 1, old, 1)
    assert service.reconcile() == 1  # the first round looks back RECONCILE_DEEP_DAYS
    store_rating(service, "t03", 2, old, 1)
    assert service.reconcile() == 0  # within the hour: the last two days only
    assert service.reconcile(now=dt.datetime.now(ZONE).timestamp() + 3601) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "poor_rating", "device": "t01", "seq": "7", "score": 1},
        {"kind": "poor_rating", "device": "../x", "seq": 7, "score": 1},
        {"kind": "poor_rating", "device": "t01", "seq": 7, "score": 4},
        {"kind": "poor_rating", "device": "t01", "seq": 7, "score": 1, "site": "elsewhere"},
        {"kind": "poor_rating", "device": "t01", "seq": 7, "score": 1, "staff": "E 1"},
        {"kind": "poor_rating", "device": "t01", "seq": 7, "score": 1, "ts": "noon"},
    ],
)
def test_a_bad_alert_makes_no_case_and_is_counted(service: Service, bad: dict[str, object]):
    service.on_alert(SITE, {"v": 1, **bad})
    assert cases(service) == []
    assert service.link.rejected["alert"] == 1


def test_an_upheld_appeal_waits_for_a_rating_not_stored_yet(service: Service):
    """The rating still queued on its terminal: the decision is kept and delivered when the
    rating is stored."""
    db = service.db.get()
    rating = appeals.Rating(SITE, "t04", 9)
    appeal = appeals.file(db, rating, "E1001", "device_fault", "按键失灵", actor="wang")
    assert not appeals.decide(db, service.influx, appeal, True, "属实", actor="liu")
    assert appeals.pending(db) == 1
    assert appeals.deliver_pending(db, service.influx) == 0
    store_rating(service, "t04", 9, dt.datetime.now(ZONE), 1)
    assert appeals.deliver_pending(db, service.influx) == 1
    assert appeals.pending(db) == 0
    (point,) = service.influx.query('SELECT "excluded", "suspect", "review" FROM "rating"')
    assert (point["excluded"], point["suspect"], point["review"]) == (1, 1, "upheld:device_fault")
