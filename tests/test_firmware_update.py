"""Updates over the air, end to end: `svc-firmware publish` (fwtools/publish.py) offers a built
image and serves it over the real Mosquitto; real firmware terminals under the MicroPython
Unix port, in a 64 KB heap with their image run in place from a ROM partition, fetch it into
their second partition, check it, switch once no window is open, and keep it only once a real
collector has acknowledged a rating from it. Power cuts, bad images and waves likewise."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import credentials
from fwtools import image, publish
from fwtools.publish import Rollout, Terminal, Tools
from simulator.terminal_process import FirmwareTerminal
from tests.servers import start_collector, wait_for
from tests.terminals import SITE, Listener, device_topic, make_terminal

HEAP = "64K"
PUBLISH_S = 120.0


def release(folder: Path, version: str, start_fails: bool = False) -> Path:
    """A ROMFS image of the firmware as version `version` (with the simulated board's modules,
    as every image a simulated terminal runs); start_fails: one whose start raises."""
    sources = image.sources_as(folder / "src", version)
    if start_fails:
        start = sources / "start.py"
        start.write_text(
            start.read_text().replace(
                "    board = Board()\n", '    raise RuntimeError("a release that cannot start")\n'
            )
        )
    files = image.build(folder / "files", simulation=True, sources=sources)
    return image.write_romfs(files, folder / f"{version}.romfs")


@pytest.fixture(scope="module")
def factory(tmp_path_factory) -> Path:
    """The image deployed by USB: today's firmware."""
    return release(tmp_path_factory.mktemp("factory"), "0.4.0")


@pytest.fixture(scope="module")
def new_release(tmp_path_factory) -> Path:
    return release(tmp_path_factory.mktemp("release"), "0.5.0")


def tools_for(mosquitto, root: str, folder: Path) -> Tools:
    path = folder / "tools.toml"
    path.write_text(
        f'mqtt_url = "{mosquitto.url}"\ntopic_root = "{root}"\nclient_id = "tools-{root[:8]}"\n'
    )
    return Tools.load(path)


class Publishing:
    """A rollout run in a thread, as `svc-firmware publish` runs it."""

    def __init__(self, rollout: Rollout, timeout_s: float = PUBLISH_S) -> None:
        self.rollout = rollout
        self.result: dict[str, Terminal] = {}
        self._thread = threading.Thread(target=self._run, args=(timeout_s,), daemon=True)
        self._thread.start()

    def _run(self, timeout_s: float) -> None:
        self.result = self.rollout.run(timeout_s)

    def join(self) -> dict[str, Terminal]:
        self._thread.join(PUBLISH_S + 30)
        assert not self._thread.is_alive(), "the rollout did not end"
        return self.result


def terminal_on(mosquitto, root: str, folder: Path, rom: Path, device: str = "ev-0001"):
    terminal = make_terminal(folder, mosquitto, root, device=device, heap=HEAP, rom=rom)
    terminal.reboots = True
    return terminal


def at(terminal: FirmwareTerminal, match, after: int = 0, timeout_s: float = 10) -> int:
    """The index of the first event from `after` on that matches, waited for (events of two
    boots may be equal: list.index would find the first)."""
    terminal.wait_for(match, timeout_s, after)
    return next(i for i, e in enumerate(terminal.events) if i >= after and match(e))


def rate(terminal: FirmwareTerminal) -> int:
    seen = len(terminal.events)
    terminal.clerk_key()
    terminal.wait_for(lambda e: e["ev"] == "opened", after=seen)
    terminal.press(0)
    return int(terminal.wait_for(lambda e: e["ev"] == "rated", after=seen)["seq"])


def stored_seqs(influxdb, database: str, device: str = "ev-0001") -> list[int]:
    rows = influxdb.query(f"SELECT seq FROM rating WHERE device = '{device}'", database)
    return sorted(int(r["seq"]) for r in rows)


@pytest.fixture
def collector_off(mosquitto, influxdb, database, tmp_path, topic_root) -> Iterator:
    """A collector, not started: ratings queue on the terminal until it is."""
    proc = start_collector(mosquitto, influxdb, tmp_path / "c", topic_root, database, start=False)
    try:
        yield proc
    finally:
        proc.stop()


def test_an_update_waits_for_the_open_window_and_loses_no_queued_rating(
    mosquitto,
    influxdb,
    database,
    collector_off,
    micropython,
    tmp_path,
    topic_root,
    factory,
    new_release,
):
    """Two ratings queued (no collector yet) and a window open when the offer comes: the
    terminal notes it and rates on; once the window has closed it resets into the update boot,
    which fetches and checks the image and switches to it; the new image boots on trial with
    the same seq and boot counting, and once the collector is back every rating is stored once
    and the first acknowledgement confirms the image."""
    listener = Listener(mosquitto, topic_root, f"listener-{topic_root[:8]}")
    terminal = terminal_on(mosquitto, topic_root, tmp_path / "t", factory)
    rollout = Rollout(
        tools_for(mosquitto, topic_root, tmp_path), SITE, new_release.read_bytes(), ["ev-0001"]
    )
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
        queued = [rate(terminal), rate(terminal)]
        terminal.clerk_key()  # a window open while the image comes
        terminal.wait_count("opened", 3)
        publishing = Publishing(rollout)
        terminal.wait_for(lambda e: e["ev"] == "update_offered", timeout_s=30)
        time.sleep(1)
        assert not terminal.of_kind("reset")  # the window is still open
        seen = len(terminal.events)
        terminal.press(1)
        queued.append(int(terminal.wait_for(lambda e: e["ev"] == "rated", after=seen)["seq"]))
        reset = terminal.wait_for(lambda e: e["ev"] == "reset", timeout_s=15)
        assert reset["reason"] == "update"
        assert terminal.events.index(reset) > seen  # once the window had closed
        terminal.wait_for(lambda e: e["ev"] == "update_ready", timeout_s=60)
        boot = terminal.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.5.0", timeout_s=15)
        assert boot["seq"] == queued[-1] and boot["queue"] == 3 and boot["boot"] == 1
        collector_off.start()
        after = rate(terminal)
        for seq in [*queued, after]:
            terminal.wait_acked(seq, timeout_s=20)
        terminal.wait_for(lambda e: e["ev"] == "update_confirmed")
        outcome = publishing.join()
    finally:
        terminal.stop()
        listener.close()
    assert outcome["ev-0001"].result == "ok" and outcome["ev-0001"].fw == "0.5.0"
    assert wait_for(lambda: stored_seqs(influxdb, database)) == [1, 2, 3, 4]
    states = [s for s in listener.of("state") if s.get("online")]
    assert states[-1]["fw"] == "0.5.0"
    assert states[-1]["update"] == {"sha256": rollout.sha256, "result": "ok"}


class HandMadeOffer:
    """An offer made and served otherwise than svc-firmware publish would: `data` served for
    an offer of `size` bytes and digest `sha256` (a corrupt or cut image), or an offer
    naming another device."""

    def __init__(self, mosquitto, root: str, data: bytes, sha256: str, size: int) -> None:
        self.root = root
        self.data = data
        self.sha256 = sha256
        self.peer = Listener(mosquitto, root, f"server-{root[:8]}-{sha256[:4]}{size}")
        self.peer.client.on_message = self._on_message
        self.size = size

    def offer(self, device: str, named: str | None = None) -> None:
        topic = device_topic(self.root, "update", device)
        self.peer.client.publish(topic, b"", qos=1, retain=True)  # afresh
        message = publish.offer(named or device, self.size, self.sha256)
        self.peer.publish(topic, message, retain=True)

    def _on_message(self, client, _u, msg) -> None:
        if not msg.topic.endswith("/fetch"):
            return  # what else the listener hears
        fetch = json.loads(msg.payload)
        device = msg.topic.split("/")[-2]
        for n in range(fetch["count"]):
            offset = fetch["offset"] + n * publish.update.CHUNK_BYTES
            data = self.data[offset : offset + publish.update.CHUNK_BYTES]
            chunk = publish.chunk(self.sha256, offset, data)
            client.publish(device_topic(self.root, "chunk", device), chunk, qos=0)
            if not data:
                break

    def close(self) -> None:
        self.peer.close()


def refusal(terminal: FirmwareTerminal, after: int) -> dict:
    return terminal.wait_for(
        lambda e: e["ev"] in ("update_refused", "update_ready"), timeout_s=60, after=after
    )


def test_a_corrupt_or_cut_image_an_offer_for_another_device_and_one_that_cannot_start_are_refused(
    mosquitto,
    influxdb,
    database,
    collector,
    micropython,
    tmp_path,
    topic_root,
    factory,
    new_release,
    tmp_path_factory,
):
    """Each refused without a reset, or (the release that raises at its start) rolled back by
    the boot loader at once; the terminal rates through all of it, every rating stored once."""
    good = new_release.read_bytes()
    sha = hashlib.sha256(good).hexdigest()
    corrupt = good[:1000] + bytes([good[1000] ^ 1]) + good[1001:]
    terminal = terminal_on(mosquitto, topic_root, tmp_path / "t", factory)
    listener = Listener(mosquitto, topic_root, f"listener-{topic_root[:8]}")
    served = []
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
        for data, size, named, why in (
            (corrupt, len(good), None, "its digest is not the one offered"),
            (good[:-700], len(good), None, f"{len(good) - 700} bytes served of the {len(good)}"),
            (good, len(good), "ev-9999", "offered to another device"),
        ):
            server = HandMadeOffer(mosquitto, topic_root, data, sha, size)
            served.append(server)
            seen = len(terminal.events)
            server.offer("ev-0001", named)
            refused = refusal(terminal, seen)
            server.close()  # one server at a time
            assert refused["ev"] == "update_refused" and why in refused["why"], refused
            after = terminal.events.index(refused)
            terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30, after=after)
            terminal.wait_acked(rate(terminal))
        crashing = release(tmp_path_factory.mktemp("crashing"), "0.6.0", start_fails=True)
        rollout = Rollout(
            tools_for(mosquitto, topic_root, tmp_path), SITE, crashing.read_bytes(), ["ev-0001"]
        )
        publishing = Publishing(rollout)
        back = terminal.wait_for(lambda e: e["ev"] == "rolled_back", timeout_s=60)
        assert "a release that cannot start" in back["why"] and back["slot"] is None
        after = terminal.events.index(back)
        terminal.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.4.0", after=after)
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30, after=after)
        outcome = publishing.join()
        terminal.wait_acked(rate(terminal), timeout_s=20)
    finally:
        terminal.stop()
        listener.close()
        for server in served:
            server.close()
    assert outcome["ev-0001"].result == "rolled_back"
    assert not [e for e in terminal.events if e["ev"] == "reset" and e["reason"] != "update"]
    assert wait_for(lambda: stored_seqs(influxdb, database)) == [1, 2, 3, 4]
    states = [s for s in listener.of("state") if s.get("online")]
    assert states[-1]["fw"] == "0.4.0" and states[-1]["update"]["result"] == "rolled_back"


STAGES = ("noted", "downloading", "switched", "unconfirmed")


@pytest.mark.parametrize("stage", STAGES)
def test_a_power_cut_at_any_stage_leaves_a_terminal_that_boots_and_rates(
    stage,
    mosquitto,
    influxdb,
    database,
    collector_off,
    micropython,
    tmp_path,
    topic_root,
    factory,
    new_release,
):
    """Power cut once the offer is noted (a window holding the update boot back), while the
    image is being written, as the new image first boots, and on the new image before a
    rating has confirmed it: the terminal boots and rates, on the old image or the new, and
    every rating is stored once."""
    terminal = terminal_on(mosquitto, topic_root, tmp_path / "t", factory)
    rollout = Rollout(
        tools_for(mosquitto, topic_root, tmp_path), SITE, new_release.read_bytes(), ["ev-0001"]
    )
    rated = []
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
        rated.append(rate(terminal))
        if stage == "noted":
            terminal.clerk_key()
            terminal.wait_count("opened", 2)
        publishing = Publishing(rollout)
        if stage == "noted":
            terminal.wait_for(lambda e: e["ev"] == "update_offered", timeout_s=30)
        elif stage == "downloading":  # the slot erased, a few chunks written at most
            terminal.wait_for(lambda e: e["ev"] == "update_fetching", timeout_s=30)
        else:
            terminal.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.5.0", timeout_s=60)
            if stage == "unconfirmed":
                terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
                rated.append(rate(terminal))  # queued: no collector yet
        terminal.power_cut()
        terminal.start()  # power back: on the old image (fetched again) or the new, on trial
        collector_off.start()
        new = terminal.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.5.0", timeout_s=90)
        after = terminal.events.index(new)
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30, after=after)
        rated.append(rate(terminal))
        for seq in rated:
            terminal.wait_acked(seq, timeout_s=30)
        terminal.wait_for(lambda e: e["ev"] == "update_confirmed", timeout_s=30)
        outcome = publishing.join()
    finally:
        terminal.stop()
    assert outcome["ev-0001"].result == "ok"
    assert wait_for(lambda: stored_seqs(influxdb, database)) == sorted(rated)
    assert sorted(rated) == list(range(1, len(rated) + 1))


def test_a_wave_of_three_confirms_before_the_other_seven_are_offered(
    mosquitto, collector, micropython, tmp_path, topic_root, new_release
):
    """Ten terminals run from their sources, without a ROM partition: each unpacks the image
    into a folder of its file system. `--wave 3`: the rest are offered only once the first
    three have booted the new image, linked and had a rating acknowledged."""
    devices = [f"ev-{n:04d}" for n in range(1, 11)]
    terminals = [make_terminal(tmp_path / d, mosquitto, topic_root, device=d) for d in devices]
    rollout = Rollout(
        tools_for(mosquitto, topic_root, tmp_path), SITE, new_release.read_bytes(), devices, 3
    )
    try:
        for terminal in terminals:
            terminal.reboots = True
            terminal.start()
        for terminal in terminals:
            terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30)
        publishing = Publishing(rollout, timeout_s=240)
        waiting = list(terminals)
        deadline = time.monotonic() + 240
        while waiting and time.monotonic() < deadline:  # each rates once on the new image
            for terminal in list(waiting):
                if any(e["ev"] == "boot" and e["fw"] == "0.5.0" for e in terminal.events):
                    new = next(e for e in terminal.events if e.get("fw") == "0.5.0")
                    after = terminal.events.index(new)
                    terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30, after=after)
                    terminal.wait_acked(rate(terminal), timeout_s=30)
                    waiting.remove(terminal)
            time.sleep(0.2)
        outcome = publishing.join()
        # published again: every terminal runs it already, none is offered it again
        again = Rollout(
            tools_for(mosquitto, topic_root, tmp_path), SITE, new_release.read_bytes(), devices
        ).run(30)
    finally:
        for terminal in terminals:
            terminal.stop()
    assert all(t.result == "ok" and not t.offered for t in again.values())
    assert {d: t.result for d, t in outcome.items()} == dict.fromkeys(devices, "ok")
    first, rest = devices[:3], devices[3:]
    assert max(outcome[d].done_at for d in first) <= min(outcome[d].offered_at for d in rest)
    assert all(e["slot"] in ("fw0", "fw1") for t in terminals for e in t.of_kind("update_ready"))


def test_a_password_rotated_while_the_terminal_is_offline_reaches_it_over_the_air(
    hall, hall_collector, influxdb, database, micropython, tmp_path
):
    """`svc-broker add-device --replace` then `svc-firmware offer-settings`, the terminal off
    the network all along: it comes back on the password it has (kept by the rotation), takes
    the offer, logs in on the new one, and keeps it; nothing it rated is lost or doubled."""
    settings = json.loads(hall.add_device(SITE, "t01").read_text())
    tools_file = hall.add_service("tools-1", "tools")
    terminal = FirmwareTerminal(tmp_path / "t", {**settings, "counter": "01", "staff": "E1001"})
    terminal.reboots = True
    rotated = tmp_path / "rotated.json"
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30)
        rated = [rate(terminal)]
        terminal.wait_acked(rated[0])
        terminal.wifi(False)  # off the network, and rates on
        terminal.wait_for(lambda e: e["ev"] == "wifi" and not e["up"])
        rated.append(rate(terminal))
        credentials.add_device(hall.folder, SITE, "t01", rotated, replace=True)
        hall.folder.reload()
        site, device, blob = publish.settings_offered(rotated)
        rollout = Rollout(Tools.load(tools_file), site, blob, [device], kind="settings")
        publishing = Publishing(rollout)
        time.sleep(2)  # offered while the terminal is away
        terminal.wifi(True)
        taken = terminal.wait_for(lambda e: e["ev"] == "settings_taken", timeout_s=90)
        assert taken["user"] == f"{SITE}/t01/2"
        after = terminal.events.index(taken)
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30, after=after)
        rated.append(rate(terminal))
        for seq in rated:
            terminal.wait_acked(seq, timeout_s=30)
        outcome = publishing.join()
        # the old password revoked (svc-broker retire): the terminal logs in with the new one
        terminal.stop()
        assert hall.folder.retire(f"{SITE}/t01") == f"{SITE}/t01"
        hall.folder.reload()
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30)
        rated.append(rate(terminal))
        terminal.wait_acked(rated[-1], timeout_s=30)
    finally:
        terminal.stop()
    assert outcome["t01"].result == "ok"
    assert not terminal.of_kind("login_refused") and not terminal.of_kind("update_fetching")
    assert wait_for(lambda: stored_seqs(influxdb, database, "t01")) == [1, 2, 3, 4]


def test_a_new_image_in_a_crash_loop_hung_or_without_a_link_goes_back_by_itself(
    own_broker, micropython, tmp_path, topic_root, factory, new_release
):
    """No rating confirms the new image here. Crashing at every boot (a task failing, the
    board reset), it is left after its third unconfirmed boot; hung, reset by the watchdog, at
    once; finding no link for 10 minutes (the broker gone, the time let pass at once), it gives
    up. Each time the terminal boots the image before it, which links and rates."""
    tools = tools_for(own_broker, topic_root, tmp_path)
    crashing = terminal_on(own_broker, topic_root, tmp_path / "crash", factory, "ev-0001")
    alone = terminal_on(own_broker, topic_root, tmp_path / "alone", factory, "ev-0002")
    try:
        for terminal in (crashing, alone):
            terminal.start()
            terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=15)
        publishing = Publishing(Rollout(tools, SITE, new_release.read_bytes(), ["ev-0001"]))
        mark = 0
        for _ in range(3):  # each boot of the new image fails a task: a reset
            new = at(crashing, lambda e: e["ev"] == "boot" and e["fw"] == "0.5.0", mark, 60)
            at(crashing, lambda e: e["ev"] == "show", new)
            crashing.crash()
            mark = at(crashing, lambda e: e["ev"] == "reset", new)
        back = crashing.wait_for(lambda e: e["ev"] == "rolled_back", timeout_s=30)
        assert back["why"] == "crash loop: 3 boots unconfirmed"
        after = crashing.events.index(back)
        crashing.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.4.0", after=after)
        crashing.wait_for(lambda e: e["ev"] == "connected", timeout_s=30, after=after)
        assert publishing.join()["ev-0001"].result == "rolled_back"

        hung = release(tmp_path / "hung", "0.6.0")  # a sound image, on a board that hangs
        publishing = Publishing(Rollout(tools, SITE, hung.read_bytes(), ["ev-0001"]))
        new = at(crashing, lambda e: e["ev"] == "boot" and e["fw"] == "0.6.0", after, 60)
        at(crashing, lambda e: e["ev"] == "show", new)
        crashing.hang()
        gone = at(crashing, lambda e: e["ev"] == "rolled_back", new, 30)
        assert crashing.events[gone]["why"] == "watchdog reset"
        at(crashing, lambda e: e["ev"] == "boot" and e["fw"] == "0.4.0", gone)
        assert publishing.join()["ev-0001"].result == "rolled_back"

        publishing = Publishing(Rollout(tools, SITE, new_release.read_bytes(), ["ev-0002"]))
        alone.wait_for(lambda e: e["ev"] == "update_ready", timeout_s=60)
        own_broker.stop()  # the new image finds no broker
        new = alone.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.5.0", timeout_s=30)
        alone.wait_for(lambda e: e["ev"] == "show", after=alone.events.index(new))
        alone.elapse(600_000)
        back = alone.wait_for(lambda e: e["ev"] == "rolled_back", timeout_s=30)
        assert back["why"] == "no link for 10 minutes"
        own_broker.start()
        after = alone.events.index(back)
        alone.wait_for(lambda e: e["ev"] == "boot" and e["fw"] == "0.4.0", after=after)
        alone.wait_for(lambda e: e["ev"] == "connected", timeout_s=60, after=after)
        seen = len(alone.events)
        alone.clerk_key()
        alone.wait_for(lambda e: e["ev"] == "opened", after=seen)
        outcome = publishing.join()
    finally:
        crashing.stop()
        alone.stop()
    assert outcome["ev-0002"].result == "rolled_back"
