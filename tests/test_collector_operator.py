"""What a hall's IT person sees of svc-collector: a file it cannot use named with its fix, a
line for each stored batch, a quiet normal stop, `svc-collector latest`, and a dead-letter file
that is there to read from the start."""

from __future__ import annotations

import errno
import json
import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from collector import latest
from collector.influx import InfluxError, InfluxHttp
from devstack import CollectorProcess, InfluxServer, MosquittoServer
from tests.samples import RATING_EXAMPLE
from tests.servers import start_collector, wait_for

UNPRIVILEGED = "nobody"


@dataclass
class Stack:
    """The test's broker and database, and a collector on them when started."""

    mosquitto: MosquittoServer
    influxdb: InfluxServer
    folder: Path
    topic_root: str
    database: str

    @property
    def topic(self) -> str:
        return f"{self.topic_root}/sjz-yuhua/ev-a1b2c3d4e5f6/rating"

    started: list[CollectorProcess] = field(default_factory=list)

    def start(self) -> CollectorProcess:
        proc = start_collector(
            self.mosquitto, self.influxdb, self.folder, self.topic_root, self.database
        )
        self.started.append(proc)
        return proc


@pytest.fixture
def stack(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    tmp_path: Path,
    topic_root: str,
    database: str,
) -> Iterator[Stack]:
    made = Stack(mosquitto, influxdb, tmp_path / "c", topic_root, database)
    yield made
    for proc in made.started:  # however the test ended
        proc.stop()


def run_collector(
    args: list[str], env: dict[str, str], user: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[bytes]:
    prefix = []
    if user:
        entry = pwd.getpwnam(user)
        prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "collector.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the collector as another user")
def test_a_file_the_collectors_user_cannot_read_is_named_with_its_fix():
    with tempfile.TemporaryDirectory() as folder:  # pytest's own is closed to other users
        where = Path(folder)
        where.chmod(0o755)
        a_file_the_collectors_user_cannot_read_is_named_with_its_fix(where)


def a_file_the_collectors_user_cannot_read_is_named_with_its_fix(tmp_path: Path) -> None:
    closed = tmp_path / "broker"  # as svc-broker made its folder before #19: 0750
    closed.mkdir()
    (closed / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (closed / "devices.txt").write_text("sjz-yuhua/ev-0001\n")
    closed.chmod(0o750)
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, pwd.getpwnam(UNPRIVILEGED).pw_uid, -1)
    env = {
        "SVC_MQTT_URL": "mqtts://c:p@127.0.0.1:1",
        "SVC_MQTT_CA_FILE": str(closed / "ca.crt"),
        "SVC_KNOWN_DEVICES": str(closed / "devices.txt"),
        "SVC_STATE_DIR": str(state),
        "SVC_HTTP": "",
    }
    done = run_collector([], env, UNPRIVILEGED)
    assert done.returncode == 2, done
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 2, lines  # the CA and the roster, one line each, no traceback
    for line, name in zip(lines, ("ca.crt", "devices.txt"), strict=True):
        assert str(closed / name) in line and f"as user {UNPRIVILEGED}" in line, line
        assert "Permission denied" in line and f"chmod o+x {closed}" in line, line
    closed.chmod(0o755)  # what svc-broker now does: the collector starts, and keeps trying
    with pytest.raises(subprocess.TimeoutExpired) as running:
        run_collector([], {**env, "SVC_MQTT_URL": "mqtt://127.0.0.1:1"}, UNPRIVILEGED, 5)
    assert b'"starting"' in running.value.stderr and b"cannot read" not in running.value.stderr


def test_a_state_folder_it_cannot_write_is_named(tmp_path: Path):
    (tmp_path / "state").write_text("a file where the folder should be")
    env = {"SVC_STATE_DIR": str(tmp_path / "state"), "SVC_HTTP": ""}
    done = run_collector([], env)
    assert done.returncode == 2
    assert f"cannot write in {tmp_path / 'state'} (state_dir" in done.stderr.decode()


def test_an_unreadable_roster_never_means_an_empty_one(tmp_path: Path):
    from collector.known import KnownDevices  # noqa: PLC0415 (the module under test)

    with pytest.raises(OSError, match=r"devices\.txt"):
        KnownDevices(tmp_path / "devices.txt")


def test_each_stored_batch_is_logged_and_a_normal_stop_is_quiet(stack: Stack, publisher):
    proc = stack.start()
    assert (proc.state_dir / "deadletter.jsonl").read_text() == ""  # there before any
    topic = stack.topic
    for seq in (1, 2):
        payload = {**RATING_EXAMPLE, "seq": seq, "ts": RATING_EXAMPLE["ts"] + seq}
        publisher.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    assert proc.wait_logged("stored", 1)
    publisher.publish(
        topic, json.dumps({**RATING_EXAMPLE, "seq": 1, "ts": RATING_EXAMPLE["ts"] + 1}), qos=1
    )
    assert '"copies": 1' in wait_for(proc.log, lambda log: '"copies": 1' in log)
    assert proc.stop() == 0
    events = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    stored = [e for e in events if e["event"] == "stored"]
    assert sum(e["ratings"] for e in stored) == 2 and sum(e["copies"] for e in stored) == 1
    assert all(e["level"] == "info" for e in stored)
    assert not any(str(RATING_EXAMPLE["staff"]) in json.dumps(e) for e in stored)  # counts only
    after_stop = events[next(i for i, e in enumerate(events) if e["event"] == "stopping") :]
    assert [e["event"] for e in after_stop][-1] == "stopped"
    assert {e["level"] for e in after_stop} == {"info"}, after_stop


def test_latest_shows_the_newest_ratings_newest_first(stack: Stack, publisher):
    influxdb, database, topic = stack.influxdb, stack.database, stack.topic
    env = {"SVC_INFLUX_URL": influxdb.url, "SVC_INFLUX_DB": database}
    done = run_collector(["latest"], env)
    assert done.returncode == 1 and b"database not found" in done.stderr  # none made yet
    proc = stack.start()
    done = run_collector(["latest"], env)
    assert done.returncode == 0 and done.stdout.decode() == f"no rating stored in {database} yet\n"
    for seq in range(1, 4):
        payload = {**RATING_EXAMPLE, "seq": seq, "ts": RATING_EXAMPLE["ts"] + seq * 1000}
        publisher.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    influx = InfluxHttp(influxdb.url, database)
    assert len(wait_for(lambda: latest.rows(influx, 10), lambda rows: len(rows) == 3)) == 3
    proc.stop()
    done = run_collector(["latest", "-n", "2"], env)
    assert done.returncode == 0, done
    header, *rows = done.stdout.decode().splitlines()
    assert header.split() == list(latest.COLUMNS)
    assert [row.split()[8] for row in rows] == ["3", "2"]  # seq, newest first
    assert all("ev-a1b2c3d4e5f6" in row and "E1023" in row for row in rows)


@pytest.mark.parametrize(
    ("make", "words", "code"),
    [
        (os.mkfifo, "not a regular file", 2),  # never waited on
        (lambda p: p.mkdir(), "a folder, not a file", 2),
        (lambda p: None, "No such file or directory", 2),
        (lambda p: p.write_bytes(b"sjz-yuhua/\xff\xfe\n"), "cannot be read", 2),  # not UTF-8
    ],
    ids=["fifo", "folder", "missing", "not-utf8"],
)
def test_an_odd_roster_stops_the_start_in_one_line(tmp_path: Path, make, words: str, code: int):
    roster = tmp_path / "devices.txt"
    make(roster)
    env = {"SVC_KNOWN_DEVICES": str(roster), "SVC_STATE_DIR": str(tmp_path / "s"), "SVC_HTTP": ""}
    done = run_collector([], env, timeout_s=20)
    said = [line for line in done.stderr.decode().splitlines() if not line.startswith("{")]
    assert done.returncode == code and len(said) == 1, done  # and no traceback
    assert said[0].startswith("svc-collector: ") and str(roster) in said[0], said
    assert words in said[0], said


def test_a_full_or_failing_disk_is_restarted_not_left_stopped():
    """Only a set-up mistake stops the collector for good (exit 2, the unit's
    RestartPreventExitStatus); a disk that refuses (ENOSPC, EIO, EROFS) exits 1, restarted."""
    from collector import preflight  # noqa: PLC0415 (the module under test)

    for code, setup in ((errno.EACCES, True), (errno.ENOENT, True), (errno.ENOSPC, False)):
        assert preflight.startup_problem(OSError(code, "x"), "f").setup is setup
    assert "RestartPreventExitStatus=2" in Path("collector/svc-collector.service").read_text()


def test_latest_says_an_odd_answer_in_one_line(influxdb: InfluxServer, database: str):
    class Odd(InfluxHttp):
        def query(self, q: str) -> list[dict[str, object]]:
            return [{"time": "2026-12-07T00:00:00Z", "seq": 1}]  # epoch not honoured

    with pytest.raises(InfluxError, match="no time in ns"):
        latest.rows(Odd(influxdb.url, database), 5)
