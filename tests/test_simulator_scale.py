"""Scale mode against the real broker, collector and database, checked with svc-sim verify."""

from __future__ import annotations

import asyncio
import textwrap

from collector.influx import InfluxHttp
from devstack import InfluxServer
from simulator import access, cli, scenario, truth, verify
from simulator.scale import ScaleRun
from simulator.truth import GroundTruth
from tests.servers import start_collector

HALL = """
name = "scale-test"
seed = 5

[time]
start = 2026-11-02
speed = {speed}
telemetry_s = 1

[hours]
open = "09:00"
close = "10:00"
curve = [1]

[profiles.mixed]
scores = {{ 5 = 50, 4 = 20, 3 = 10, 2 = 10, 1 = 10 }}
reasons = {{ attitude = 1, efficiency = 1 }}

[[halls]]
site = "{site}"
mode = "prompt"
counters = {counters}
profiles = ["mixed"]
participation = 0.8
customers_per_hour = {per_hour}
{extra}
"""


def load(
    tmp_path,
    counters: int = 3,
    extra: str = "",
    text: str = HALL,
    speed: int = 0,
    per_hour: int = 60,
) -> scenario.Scenario:
    """The hall of HALL (or text); speed 0 plays as fast as it can. Its site is always the same,
    so its plan is (draws are seeded by the hall's name; topic roots keep runs apart)."""
    path = tmp_path / "scale.toml"
    filled = text.format(
        site="scale-hall", counters=counters, extra=extra, speed=speed, per_hour=per_hour
    )
    path.write_text(textwrap.dedent(filled))
    return scenario.load(path)


def play(s: scenario.Scenario, port: int, root: str, truth_path, restart=None) -> ScaleRun:
    run = ScaleRun(
        s, access.plain(f"mqtt://127.0.0.1:{port}"), root, GroundTruth(truth_path), restart
    )
    asyncio.run(run.run())
    return run


def settled(truth_path, influx: InfluxServer, db: str, timeout_s: float = 30):
    return verify.settled(truth_path, influx_writer(influx, db), timeout_s)


def influx_writer(influx: InfluxServer, db: str) -> InfluxHttp:
    return InfluxHttp(influx.url, db)


def test_a_clean_run_verifies_and_a_deleted_or_doubled_point_is_caught(
    mosquitto, influxdb, collector, topic_root, database, tmp_path, capsys
):
    s = load(tmp_path)
    truth_path = tmp_path / "truth.jsonl"
    run = play(s, mosquitto.port, topic_root, truth_path)
    sent = truth.read(truth_path)
    assert len(sent) == run.progress.sent == run.progress.acked > 100
    reports = settled(truth_path, influxdb, database)
    assert [r.differences for r in reports] == [0, 0, 0]
    assert sum(r.expected for r in reports) == len(sent)
    args = ["verify", str(truth_path), "--influx", influxdb.url, "--db", database]
    assert cli.main(args) == 0

    gone, twice = sent[3], sent[10]
    when = gone["ts"] * 10**6 + gone["seq"] % 10**6
    influxdb.query(
        f"DELETE FROM rating WHERE \"device\" = '{gone['device']}' "
        f"AND time >= {when} AND time <= {when}",
        database,
    )
    copy = f"rating,device={twice['device']},mode=prompt,site={twice['site']} seq={twice['seq']}i"
    influx_writer(influxdb, database).write([f"{copy} {twice['ts'] * 10**6 + 999_999}"])
    capsys.readouterr()
    assert cli.main(args) == 1
    printed = capsys.readouterr().out
    assert "lost 1, doubled 1, wrong 0, unexpected 0" in printed
    reports = verify.verify(truth_path, influx_writer(influxdb, database))
    by_device = {r.device: r for r in reports}
    assert by_device[gone["device"]].lost == [gone["seq"]]
    assert by_device[twice["device"]].doubled == [twice["seq"]]


def test_scale_ratings_are_what_the_plan_pressed_and_the_collector_takes_them_all(
    mosquitto, influxdb, collector, topic_root, database, tmp_path
):
    extra = """
    [[fraud]]
    kind = "self_rating"
    counter = "02"
    at = "09:30"
    count = 6

    [[fraud]]
    kind = "stuck_key"
    counter = "01"
    at = "09:40"
    seconds = 60
    """
    s = load(tmp_path, counters=2, extra=textwrap.dedent(extra))
    truth_path = tmp_path / "truth.jsonl"
    run = play(s, mosquitto.port, topic_root, truth_path)
    sent = truth.read(truth_path)
    assert not sum(r.differences for r in settled(truth_path, influxdb, database))
    tallies = run.progress.tallies
    prompts = sum(t.prompts for t in tallies.values())
    skipped = [r for r in sent if r["score"] is None]
    assert len(skipped) == sum(t.skipped for t in tallies.values())
    # every prompt ends as exactly one rating: pressed, or skipped when its window closed
    # unrated (timed out, or closed by the next prompt)
    assert len(sent) == prompts
    first = s.counters[0].device
    assert {r["seq"] for r in sent if r["device"] == first} == set(
        range(1, 1 + sum(1 for r in sent if r["device"] == first))
    )
    own = [r for r in sent if r["cause"] == "self_rating"]
    assert len(own) == 6 and all(r["score"] == 5 and r["wait_ms"] < 500 for r in own)
    flagged = influxdb.query("SELECT seq FROM rating WHERE suspect_why = 'fast_press'", database)
    assert len(flagged) >= 6
    jammed = influxdb.query("SELECT stuck_keys FROM device WHERE stuck_keys > 0", database)
    # reported at once in the state, as the firmware does, and in telemetry if it went out
    # before the key was freed; then cleared
    assert [row["stuck_keys"] for row in jammed] in ([1], [1, 1])
    assert (collector.state_dir / "deadletter.jsonl").read_text() == ""  # none set aside


def test_faults_in_scale_mode_lose_nothing(own_broker, influxdb, tmp_path, topic_root, database):
    broker = own_broker  # restarted by the plan's broker_restart
    collector = start_collector(
        broker, influxdb, tmp_path / "collector", topic_root, database, "faults"
    )

    extra = """
    [[fault]]
    kind = "wifi_drop"
    counter = "01"
    at = "09:10"
    seconds = 600

    [[fault]]
    kind = "power_cut"
    counter = "02"
    at = "09:20"
    seconds = 60

    [[fault]]
    kind = "broker_restart"
    at = "09:40"
    seconds = 2
    """
    try:
        s = load(tmp_path, counters=2, extra=textwrap.dedent(extra))
        truth_path = tmp_path / "truth.jsonl"
        run = play(s, broker.port, topic_root, truth_path, broker.outage)
        reports = settled(truth_path, influxdb, database, timeout_s=60)
    finally:
        assert collector.stop() == 0
    assert [r.differences for r in reports] == [0, 0]
    assert run.progress.faults[-1] == "broker_restart" and len(run.progress.faults) == 3
    sent = truth.read(truth_path)
    boots = sorted({r["boot"] for r in sent if r["device"] == s.counters[1].device})
    assert boots == [1, 2]  # the power cut was a reboot
    offline = influxdb.query("SELECT online FROM device WHERE online = 0", database)
    assert offline  # the broker told of the lost terminals with their last wills


MONTH = """
[[halls]]
site = "{site}"
mode = "free"
counters = 1
profiles = ["mixed"]
participation = 0.5
customers_per_hour = 20
"""


def test_a_month_of_two_halls_plays_on_its_own_calendar(
    mosquitto, influxdb, collector, topic_root, database, tmp_path
):
    """A prompt-mode hall and a free-mode station, 30 days closed on Sundays, at speed 0."""
    text = HALL.replace("[time]\nstart = 2026-11-02\n", "[time]\nstart = 2026-11-02\ndays = 30\n")
    text = text.replace("curve = [1]\n", "closed_weekdays = [7]\ncurve = [1]\n")
    station = "scale-station"
    s = load(tmp_path, counters=2, extra=MONTH.format(site=station), text=text)
    truth_path = tmp_path / "truth.jsonl"
    play(s, mosquitto.port, topic_root, truth_path)
    sent = truth.read(truth_path)
    assert not sum(r.differences for r in settled(truth_path, influxdb, database, 60))
    days = {(r["ts"] - s.day_start_ms(1)) // 86_400_000 + 1 for r in sent}
    assert days == {d for d in range(1, 31) if d % 7 != 0}  # every day but the four Sundays
    for r in sent:  # within opening hours (09:00-10:00 local), a skipped one up to its window
        minute = (r["ts"] - s.day_start_ms(1)) % 86_400_000 // 60_000
        assert 9 * 60 <= minute <= 10 * 60
    free = [r for r in sent if r["site"] == station]
    assert free and all(r["mode"] == "free" and r["wait_ms"] is None for r in free)
    assert all(r["score"] is not None for r in free)  # no window to skip in free mode


ASPECT_HALLS = """
[profiles.kind_but_slow]
scores = {{ 5 = 1 }}
reasons = {{ other = 1 }}
attitude = {{ 5 = 1 }}
efficiency = {{ 2 = 1 }}

[[halls]]
site = "{site}"
mode = "free"
aspects = true
counters = 1
profiles = ["kind_but_slow"]
participation = 1.0
customers_per_hour = 40
"""


def test_an_aspect_hall_stores_each_clerks_attitude_and_efficiency(
    mosquitto, influxdb, collector, topic_root, database, tmp_path
):
    """Beside a hall of overall scores, a hall in the aspect mode whose clerk is kind but slow:
    every rating carries both aspects as pressed (efficiency unanswered now and then), stored
    as fields, and its score and reason follow from them."""
    s = load(tmp_path, counters=1, extra=ASPECT_HALLS.format(site="aspect-hall"))
    truth_path = tmp_path / "truth.jsonl"
    play(s, mosquitto.port, topic_root, truth_path)
    sent = truth.read(truth_path)
    assert not sum(r.differences for r in settled(truth_path, influxdb, database))
    plain = [r for r in sent if r["site"] == "scale-hall"]
    rated = [r for r in sent if r["site"] == "aspect-hall"]
    assert plain and all("aspects" not in r for r in plain)
    assert len(rated) > 10
    answered = [r for r in rated if r["aspects"]["efficiency"] is not None]
    assert all(r["aspects"] == {"attitude": 5, "efficiency": 2} for r in answered)
    assert all((r["score"], r["reason"]) == (2, "efficiency") for r in answered)
    unanswered = [r for r in rated if r["aspects"]["efficiency"] is None]
    assert unanswered and all((r["score"], r["reason"]) == (5, None) for r in unanswered)
    [means] = influxdb.query(
        "SELECT mean(attitude) AS attitude, mean(efficiency) AS efficiency, count(attitude) AS n "
        "FROM rating WHERE site = 'aspect-hall'",
        database,
    )
    assert (means["attitude"], means["efficiency"], means["n"]) == (5, 2, len(rated))
