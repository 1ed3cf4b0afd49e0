"""Who the collector hears at all: devices on the roster of known devices (when one is set),
and no rating left retained on the broker. Checked by collector/batch.py before any field."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from collector import known
from collector.batch import Checker, Delivery
from collector.deadletter import DeadLetters
from collector.known import KnownDevices
from collector.metrics import Metrics
from collector.suspect import SuspectJudge
from firmware import contract
from tests.samples import RATING_EXAMPLE

ROOT = contract.ROOT


def delivery(site: str, device: str, retained: bool = False, seq: int = 1) -> Delivery:
    topic = contract.topic(ROOT, site, device, "rating")
    payload = json.dumps({**RATING_EXAMPLE, "seq": seq}).encode()
    return Delivery(topic, payload, 1, 1, False, 1, time.time_ns(), retained)


def checker(tmp_path: Path, roster: KnownDevices | None) -> tuple[Checker, Metrics]:
    metrics = Metrics()
    dead = DeadLetters(tmp_path / "deadletter.jsonl", metrics.rejected)
    return Checker(ROOT, SuspectJudge(), dead, metrics, roster), metrics


def dead_kinds(check: Checker) -> list[str]:
    """The kinds in the dead-letter file, once what was kept is flushed to it, as the
    collector does before it acknowledges."""
    assert check.dead.flush()
    lines = check.dead.path.read_text().splitlines()
    return [json.loads(line)["kind"] for line in lines]


def test_a_device_off_the_roster_is_dead_lettered_and_still_acknowledged(tmp_path: Path):
    roster = tmp_path / "devices.txt"
    roster.write_text("# known\nha01/t01\n  ha01/t02  # at the door\n")
    check, metrics = checker(tmp_path, KnownDevices(roster))
    assert check.check(delivery("ha01", "t01")).point is not None
    assert check.check(delivery("ha01", "t02")).point is not None
    stranger = check.check(delivery("ha01", "t03", seq=7))
    assert stranger.point is None and stranger.ack is not None and stranger.ack.seq == 7
    assert dead_kinds(check) == ["unknown_device"]
    assert metrics.rejected_total() == {"unknown_device": 1}


def test_the_roster_is_read_again_when_it_changes_and_kept_when_it_goes(tmp_path: Path):
    """A device added is known at its first message; one removed is forgotten within the
    second; a roster file gone keeps the last one (not dead-letter the whole hall)."""
    path = tmp_path / "devices.txt"
    path.write_text("ha01/t01\n")
    roster = KnownDevices(path)
    assert not roster.knows("ha01", "t09")
    path.write_text("ha01/t01\nha01/t09\n")
    assert roster.knows("ha01", "t09")  # at once: it was not known
    path.write_text("ha01/t09\n")
    later = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(later, later))  # a change within the file system's time resolution
    assert roster.knows("ha01", "t01")  # still, within the second
    time.sleep(known.LOOK_EVERY_S)
    assert not roster.knows("ha01", "t01")
    path.unlink()
    assert roster.knows("ha01", "t09")


def test_a_retained_rating_is_dead_lettered_a_retained_state_is_not(tmp_path: Path):
    check, _ = checker(tmp_path, None)
    assert check.check(delivery("ha01", "t01", retained=True)).point is None
    state = contract.topic(ROOT, "ha01", "t01", "state")
    payload = b'{"v":1,"online":true,"boot":3}'
    kept = check.check(Delivery(state, payload, 2, 1, False, 1, time.time_ns(), True))
    assert kept.point is not None
    assert dead_kinds(check) == ["retained"]
