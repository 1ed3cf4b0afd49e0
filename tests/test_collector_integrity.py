"""Every rating stored once, under the right clerk, and acknowledged only once it is safe: the
collector's side of issue 18, each case on the real broker and InfluxDB."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import copies, topics
from collector import rating as rating_msg
from collector.batch import Judged, Point
from collector.deadletter import DeadLetters
from collector.influx import InfluxHttp
from collector.metrics import Metrics
from collector.spool import Spool
from devstack import InfluxServer
from firmware import contract
from tests.influx_proxy import influx_proxy
from tests.samples import RATING_EXAMPLE as EXAMPLE
from tests.servers import start_collector, wait_for
from tests.test_collector_service import DEVICE_TOPIC, dead_letters, publish


def rows(influx: InfluxServer, database: str) -> list[dict]:
    try:
        return influx.query("SELECT * FROM rating", database)
    except Exception:  # the database is not there (yet)
        return []


def kinds(collector) -> list[str]:
    return [d["kind"] for d in dead_letters(collector)]


def rating(**changes: object) -> bytes:
    return json.dumps({**EXAMPLE, **changes}).encode()


# --- copies: one rating, one point ---


def test_an_undated_copy_of_a_dated_rating_is_that_rating_and_not_a_second(
    collector, publisher, influxdb, database, topic_root, acks
):
    """A terminal that rebooted sends a rating it had stamped late without its stamp."""
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, rating())
    assert acks.wait(1042)
    publish(publisher, topic, rating(ts=None))  # the same rating, its stamp forgotten
    assert acks.wait(1042, 2)
    publish(publisher, topic, rating(ts=None, staff="E9999"))  # not the same rating
    assert acks.wait(1042, 3)
    [stored] = rows(influxdb, database)
    assert (stored["staff"], stored.get("undated"), stored["score"]) == ("E1023", None, 4)
    assert kinds(collector) == ["conflict"]
    assert "staff 'E1023' -> 'E9999'" in dead_letters(collector)[0]["reason"]


def test_an_undated_copy_with_other_content_is_a_conflict(
    collector, publisher, influxdb, database, topic_root, acks
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, rating(ts=None))
    assert acks.wait(1042)
    publish(publisher, topic, rating(ts=None))  # a true copy
    publish(publisher, topic, rating(ts=None, staff="E9999", counter="04"))
    assert acks.wait(1042, 3)
    [stored] = rows(influxdb, database)
    assert (stored["staff"], stored["counter"], stored["undated"]) == ("E1023", "03", 1)
    assert kinds(collector) == ["conflict"]


def test_a_copy_after_a_restart_keeps_its_originals_suspect_verdict(
    mosquitto, influxdb, publisher, tmp_path, topic_root, database, acks
):
    """The fifth rating within 30 s is a burst; its copy, judged by a collector that has not
    seen the four before it (restarted, or another of the share group), must not clear it."""
    collector = start_collector(mosquitto, influxdb, tmp_path / "c", topic_root, database)
    topic = DEVICE_TOPIC.format(root=topic_root)
    burst = [rating(seq=seq, ts=EXAMPLE["ts"] + seq * 1000) for seq in range(1, 6)]
    try:
        for body in burst:
            publish(publisher, topic, body)
        assert acks.wait(5)
        assert collector.stop() == 0
        collector.start()
        publish(publisher, topic, burst[-1])
        assert acks.wait(5, 2)
    finally:
        assert collector.stop() == 0
    fifth = [r for r in rows(influxdb, database) if r["seq"] == 5]
    assert [(r["suspect"], r["suspect_why"]) for r in fifth] == [(1, "burst")]


# --- outages: what waits, what is refused ---


def test_a_conflicting_copy_that_waited_in_the_spool_is_a_conflict(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database, acks
):
    collector = start_collector(mosquitto, own_influx, tmp_path / "c", topic_root, database)
    topic = DEVICE_TOPIC.format(root=topic_root)
    try:
        publish(publisher, topic, rating())
        assert acks.wait(1042)
        own_influx.stop()
        publish(publisher, topic, rating(staff="E9999"))  # the same seq, another clerk
        publish(publisher, topic, rating())  # and a true copy
        assert acks.wait(1042, 3)  # both safe in the spool
        own_influx.restart()
        assert collector.wait_logged("spool_written")
    finally:
        assert collector.stop() == 0
    stored = rows(own_influx, database)
    assert [(r["staff"], r["seq"]) for r in stored] == [("E1023", 1042)]
    assert kinds(collector) == ["conflict"]


def test_two_collectors_store_an_undated_rating_once_after_an_outage(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database, acks
):
    """Each of a share group takes one copy while InfluxDB is down; neither finds the other's."""
    group = {"share_group": f"g{topic_root[1:9]}"}
    pair = [
        start_collector(mosquitto, own_influx, tmp_path / n, topic_root, database, n, **group)
        for n in ("one", "two")
    ]
    topic = DEVICE_TOPIC.format(root=topic_root)
    try:
        publish(publisher, topic, rating(seq=1))  # InfluxDB knows the database
        assert acks.wait(1)
        own_influx.stop()
        publish(publisher, topic, rating(ts=None))
        publish(publisher, topic, rating(ts=None))  # the broker gives each collector one
        assert all(c.wait_logged("spooled") for c in pair)
        own_influx.restart()
        assert acks.wait(1042, 2, timeout_s=60)
        assert all(c.wait_logged("spool_written") for c in pair)
        time.sleep(1)
    finally:
        assert all(c.stop() == 0 for c in pair)
    assert sorted(r["seq"] for r in rows(own_influx, database)) == [1, 1042]


def test_a_dropped_database_is_an_outage_and_is_made_again(
    collector, publisher, influxdb, database, topic_root, acks
):
    """InfluxDB answers 404: nothing is dead-lettered or acknowledged before it is stored."""
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, rating(seq=1))
    assert acks.wait(1)
    InfluxHttp(influxdb.url, database).execute(f'DROP DATABASE "{database}"')
    for seq in (2, 3):
        publish(publisher, topic, rating(seq=seq, ts=EXAMPLE["ts"] + seq))
    assert acks.wait(3)  # kept in the spool while the database was missing
    found = wait_for(lambda: sorted(r["seq"] for r in rows(influxdb, database)), timeout_s=30)
    assert found == [2, 3]
    assert kinds(collector) == []


def test_a_proxy_timing_out_is_an_outage_not_a_refusal(
    mosquitto, influxdb, publisher, tmp_path, topic_root, database, acks
):
    """A proxy between collector and InfluxDB answers 408 for a while: the batch is spooled
    and written when the proxy passes writes again; nothing is dead-lettered."""
    with influx_proxy(influxdb.url) as proxy:
        collector = start_collector(
            mosquitto, influxdb, tmp_path / "c", topic_root, database, influx_url=proxy.url
        )
        topic = DEVICE_TOPIC.format(root=topic_root)
        try:
            publish(publisher, topic, rating(seq=1))
            assert acks.wait(1)
            proxy.fault = lambda _m, path: 408 if path == "/write" else None
            publish(publisher, topic, rating(seq=2, ts=EXAMPLE["ts"] + 2))
            assert collector.wait_logged("spooled")
            proxy.fault = lambda _m, _p: None
            assert acks.wait(2)
            assert collector.wait_logged("spool_written")
        finally:
            assert collector.stop() == 0
    assert sorted(r["seq"] for r in rows(influxdb, database)) == [1, 2]
    assert kinds(collector) == []


def test_a_refused_rating_is_dead_lettered_once_though_influxdb_fails_midway(
    mosquitto, influxdb, publisher, tmp_path, topic_root, database, acks
):
    """InfluxDB refuses every rating of a batch (a field of another type is already stored);
    while they are written one by one to find which, InfluxDB fails once. The batch is tried
    again; each refused rating is still dead-lettered once."""
    db = InfluxHttp(influxdb.url, database)
    db.ensure_database()
    db.write([f"rating,site=x,device=y score=1.5 {(EXAMPLE['ts'] - 1) * 1_000_000}"])
    writes = 0

    def fail_the_fourth_single_write(_method: str, path: str) -> int | None:
        nonlocal writes
        if path != "/write":
            return None
        writes += 1
        return 503 if writes == 5 else None  # the batch, three lines alone, then a failure

    with influx_proxy(influxdb.url) as proxy:
        collector = start_collector(
            mosquitto, influxdb, tmp_path / "c", topic_root, database,
            influx_url=proxy.url, batch_linger_ms="1000",
        )  # fmt: skip
        topic = DEVICE_TOPIC.format(root=topic_root)
        proxy.fault = fail_the_fourth_single_write
        try:
            for seq in range(1, 9):
                publisher.publish(topic, rating(seq=seq, ts=EXAMPLE["ts"] + seq), qos=1)
            assert acks.wait(8, timeout_s=30)  # three refused, five spooled
            assert collector.wait_logged("spool_written", timeout_s=30)
        finally:
            assert collector.stop() == 0
    assert proxy.answered == [("POST", "/write", 503)]
    refused = [json.loads(d["payload"])["seq"] for d in dead_letters(collector)]
    assert sorted(refused) == list(range(1, 9))


def test_a_rating_that_is_not_utf8_is_dead_lettered_and_acknowledged(
    collector, publisher, topic_root, acks
):
    """A terminal that put a lone surrogate in its ticket must be told to forget the rating,
    or its queue never moves again."""
    body = rating(ticket="X").replace(b'"X"', b'"\xed\xa0\x80"')  # MicroPython's "\ud800"
    publish(publisher, DEVICE_TOPIC.format(root=topic_root), body)
    assert acks.wait(1042)
    assert kinds(collector) == ["malformed_json"]


# --- the disk: what is acknowledged is on it ---


def test_the_spool_keeps_small_batches_in_one_file(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database, acks
):
    collector = start_collector(mosquitto, own_influx, tmp_path / "c", topic_root, database)
    topic = DEVICE_TOPIC.format(root=topic_root)
    try:
        publish(publisher, topic, rating(seq=1))
        assert acks.wait(1)
        own_influx.stop()
        for seq in range(2, 32):
            publish(publisher, topic, rating(seq=seq, ts=EXAMPLE["ts"] + seq))
            assert acks.wait(seq)  # each a batch of its own
        assert len(list((tmp_path / "c" / "spool").iterdir())) == 1
        own_influx.restart()
        assert collector.wait_logged("spool_written")
    finally:
        assert collector.stop() == 0
    assert sorted(r["seq"] for r in rows(own_influx, database)) == list(range(1, 32))


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 1 MiB file system of the test's own (tmpfs), to fill up."""
    where = tmp_path / "small"
    where.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """A file taking all but about leave_bytes of the disk's free space."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave_bytes))
    return filler


def test_a_full_disk_holds_acknowledgements_until_space_returns(
    mosquitto, own_influx, publisher, tmp_path, topic_root, database, acks, small_disk
):
    """The spool and the dead letters cannot be written: the collector keeps running and
    acknowledges nothing it has not put on disk; once space returns it goes on."""
    collector = start_collector(
        mosquitto, own_influx, small_disk, topic_root, database, start=False
    )
    collector.log_path = tmp_path / "collector.log"  # the log is not what runs out of space
    collector.start()
    topic = DEVICE_TOPIC.format(root=topic_root)
    try:
        publish(publisher, topic, rating(seq=1))
        assert acks.wait(1)
        own_influx.stop()
        filler = fill(small_disk, 0)
        for seq in range(2, 12):
            publish(publisher, topic, rating(seq=seq, ts=EXAMPLE["ts"] + seq))
        publish(publisher, topic, rating(seq=99, score=9))  # dead-lettered, then acknowledged
        assert collector.wait_logged("spool_failed")
        time.sleep(2)
        assert [s for s in acks.seqs if s != 1] == []  # nothing acknowledged, still running
        filler.unlink()
        assert acks.wait(99, timeout_s=30)
        assert all(acks.count(seq) >= 1 for seq in range(2, 12))
        own_influx.restart()
        assert collector.wait_logged("spool_written", timeout_s=30)
    finally:
        assert collector.stop() == 0
    assert sorted(r["seq"] for r in rows(own_influx, database)) == list(range(1, 12))
    assert kinds(collector) == ["out_of_range"]


def synced(monkeypatch) -> list[str]:
    """What os.fsync is called on from now on, each as "file" or "folder"."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


DEVICE_LINE = "device,device=ev-1,site=sjz-yuhua online=1i 1"


def test_a_new_spool_file_is_synced_with_its_folder(tmp_path, monkeypatch):
    calls = synced(monkeypatch)
    spool = Spool(tmp_path, 10**6)
    assert spool.append([Point("t", b"", DEVICE_LINE, None)])
    assert calls == ["file", "folder"]  # the file's name is durable too
    assert spool.append([Point("t", b"", DEVICE_LINE, None)])
    assert calls == ["file", "folder", "file"]  # the same file: its name is there already
    assert len(spool) == 1


def test_dead_letters_are_synced_to_disk_before_they_count_as_kept(tmp_path, monkeypatch):
    calls = synced(monkeypatch)
    dead = DeadLetters(tmp_path / "deadletter.jsonl", Metrics().rejected)
    assert calls == ["folder"]  # the empty file made at start, its name durable
    dead.record("t", b"{", "malformed JSON", "malformed_json")
    assert calls == ["folder"]  # kept in memory until flushed
    assert dead.flush()
    assert calls == ["folder", "file"]
    DeadLetters(tmp_path / "deadletter.jsonl", Metrics().rejected)
    assert calls == ["folder", "file"]  # there already: nothing to make
    assert json.loads(dead.path.read_text())["kind"] == "malformed_json"


def test_a_torn_spool_line_is_skipped_and_a_spool_of_the_last_version_is_read(tmp_path):
    """A crash mid-append leaves a torn line (its batch never acknowledged); a spool left by
    the version before ratings waited as messages holds line protocol."""
    spool = Spool(tmp_path, 10**6)
    topic = DEVICE_TOPIC.format(root="svc/v1")
    rating_point = Point(topic, rating(ts=None), None, Judged(parse_example(), 1, "burst"))
    assert spool.append([rating_point])
    with next(tmp_path.glob("*.jsonl")).open("ab") as f:
        f.write(b'{"line": "device,dev')
    (tmp_path / "000000000099.lp").write_text(f"{DEVICE_LINE}\n{DEVICE_LINE}")
    again = Spool(tmp_path, 10**6)
    path, points = again.oldest()  # type: ignore[misc]
    assert points == [rating_point]
    again.remove(path)
    _, legacy = again.oldest()  # type: ignore[misc]
    assert [p.line for p in legacy] == [DEVICE_LINE, DEVICE_LINE]


def parse_example():
    where = topics.parse(DEVICE_TOPIC.format(root="svc/v1"), "svc/v1")
    return rating_msg.parse(where, rating(ts=None))


def test_a_batch_from_thousands_of_terminals_is_sorted_in_one_look_up(influxdb, database):
    """After an outage a batch holds ratings of thousands of terminals: a statement each, too
    long for a URL (InfluxDB answered 431, and the batch waited for ever)."""
    writer = InfluxHttp(influxdb.url, database)
    writer.ensure_database()
    batch = [
        (
            rating_msg.Rating(
                "sjz-yuhua", f"ev-{n:05d}", 7, 1, EXAMPLE["ts"] + n, 4, None, "03", "E1023",
                None, "prompt", 1830,
            ),
            EXAMPLE["ts"] + n + 100,
        )
        for n in range(3000)
    ]  # fmt: skip
    writer.write([r.point(received_ms) for r, received_ms in batch[:5]])
    verdicts = copies.classify(writer, batch).verdicts
    assert [v.new for v in verdicts] == [False] * 5 + [True] * 2995


# --- what must not stop the collector ---


def test_a_payload_nested_past_any_parser_is_dead_lettered_and_the_next_stored(
    collector, publisher, influxdb, database, topic_root, acks
):
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, b"[" * 1100)
    publish(publisher, topic, rating())
    assert acks.wait(1042)
    assert [r["seq"] for r in rows(influxdb, database)] == [1042]
    assert kinds(collector) == ["malformed_json"]


def test_a_rating_pressed_in_2262_is_stored_and_holds_up_nothing(
    collector, publisher, influxdb, database, topic_root, acks
):
    """Its look-up's window reached past the last time InfluxDB can hold: the query was
    refused, taken for an outage, and every batch after it waited behind it for ever."""
    topic = DEVICE_TOPIC.format(root=topic_root)
    publish(publisher, topic, rating(seq=1, ts=contract.MAX_TS_MS - 1000))
    publish(publisher, topic, rating(seq=2))
    assert acks.wait(2)
    assert sorted(r["seq"] for r in rows(influxdb, database)) == [1, 2]
    assert kinds(collector) == []


def test_a_rating_found_stored_twice_is_settled_by_its_next_copy(
    collector, publisher, influxdb, database, topic_root, acks
):
    """Two collectors each wrote an undated rating, and one was stopped before it settled."""
    where = topics.parse(DEVICE_TOPIC.format(root=topic_root), topic_root)
    undated = rating_msg.parse(where, rating(ts=None))
    writer = InfluxHttp(influxdb.url, database)
    writer.ensure_database()
    first, second = EXAMPLE["ts"], EXAMPLE["ts"] + 250
    writer.write([undated.point(t, undated.undated_time_ns(t)) for t in (first, second)])
    assert len(rows(influxdb, database)) == 2
    publish(publisher, DEVICE_TOPIC.format(root=topic_root), rating(ts=None))
    assert acks.wait(1042)
    [kept] = wait_for(lambda: rows(influxdb, database), lambda found: len(found) == 1)
    assert kept["time"] == undated.undated_time_ns(first)


def test_odd_answers_from_influxdb_are_an_outage_not_a_crash(
    mosquitto, influxdb, publisher, tmp_path, topic_root, database, acks
):
    """A proxy (or a server gone odd) answers the look-up with 200 and something that is not
    an InfluxQL answer; then a 400 of its own, not InfluxDB's: neither is a refusal."""
    odd = iter([(200, b"null"), (200, b'{"results":{}}'), (200, b'{"results":["x"]}')])
    with influx_proxy(influxdb.url) as proxy:
        collector = start_collector(
            mosquitto, influxdb, tmp_path / "c", topic_root, database, influx_url=proxy.url
        )
        topic = DEVICE_TOPIC.format(root=topic_root)
        try:
            publish(publisher, topic, rating(seq=1))
            assert acks.wait(1)
            proxy.fault = lambda _m, path: next(odd, None) if path == "/query" else None
            publish(publisher, topic, rating(seq=2, ts=EXAMPLE["ts"] + 2))
            assert collector.wait_logged("spooled")
            proxy.fault = lambda _m, path: (
                (400, b"<html>bad request</html>") if path == "/write" else None
            )
            assert collector.wait_logged("influx_unavailable", 5, timeout_s=30)
            proxy.fault = lambda _m, _p: None
            assert collector.wait_logged("spool_written", timeout_s=30)
        finally:
            assert collector.stop() == 0
    assert sorted(r["seq"] for r in rows(influxdb, database)) == [1, 2]
    assert kinds(collector) == []


def test_a_spool_line_that_is_not_an_entry_comes_back_for_the_dead_letters(tmp_path):
    """Only a torn last line is a write cut short; any other line that cannot be read held a
    batch that was acknowledged, so it is kept, as a dead letter, never dropped."""
    spool = Spool(tmp_path, 10**6)
    assert spool.append([Point("t", b"", DEVICE_LINE, None)])
    path = next(tmp_path.glob("*.jsonl"))
    forged = json.dumps(
        {"site": "x", "device": "y", "topic": "t", "payload": '{"v":1,"seq":"1;DROP"}',
         "received_ms": 1, "suspect_why": None}
    )  # fmt: skip
    path.write_bytes(path.read_bytes() + b"not json\n" + forged.encode() + b"\n")
    _, points = Spool(tmp_path, 10**6).oldest()  # type: ignore[misc]
    assert [(p.line, p.judged) for p in points[1:]] == [(None, None), (None, None)]
    assert points[1].payload == b"not json"
