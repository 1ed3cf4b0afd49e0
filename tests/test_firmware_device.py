"""The real firmware under the MicroPython Unix port: simulated board, littlefs, real broker,
and the real collector, whose acks are what let a terminal forget a rating."""

from __future__ import annotations

import csv
import json
import os
import queue
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector import rating as collector_rating
from collector.topics import DeviceTopic
from dashboards.cli import appraisal_main
from fwtools.unix_port import FirmwareError
from tests.servers import start_collector, wait_for
from tests.terminals import Listener, device_topic, make_terminal, relink


@pytest.fixture
def own_collector(own_broker, influxdb, tmp_path, topic_root, database):
    """The collector on the test's own broker."""
    proc = start_collector(own_broker, influxdb, tmp_path / "own-collector", topic_root, database)
    yield proc
    proc.stop()


@pytest.fixture
def listener(mosquitto, topic_root, collector):
    listening = Listener(mosquitto, topic_root, f"listener-{topic_root.split('/')[0]}")
    yield listening
    listening.close()


@pytest.fixture
def terminal(mosquitto, micropython, tmp_path, topic_root, listener, request):
    """A started terminal, watched by the listener; settings from the `terminal_settings` mark."""
    mark = request.node.get_closest_marker("terminal_settings")
    settings = mark.kwargs if mark else {}
    device = make_terminal(tmp_path / "t", mosquitto, topic_root, **settings)
    device.start()
    device.wait_for(lambda e: e["ev"] == "connected")
    # its state went after its subscriptions on the one connection: once the broker passes it
    # on, a prompt published now finds them (the terminal sends them; it does not wait)
    listener.wait("state", 1)
    yield device
    device.stop()


def rate(terminal, button, n):
    """The clerk asks (the n-th window of this run), the customer presses."""
    terminal.clerk_key()
    terminal.wait_count("opened", n)
    terminal.press(button)


def shows(terminal):
    return [e["state"] for e in terminal.of_kind("show")]


def test_a_rating_carries_the_contract_fields(terminal, listener):
    rate(terminal, 1, 1)
    terminal.wait_acked(1)
    [message] = listener.wait("rating", 1)
    assert set(message) == {
        "v",
        "seq",
        "boot",
        "ts",
        "score",
        "reason",
        "counter",
        "staff",
        "ticket",
        "mode",
        "wait_ms",
    }
    assert (message["seq"], message["boot"], message["score"]) == (1, 0, 4)
    assert (message["counter"], message["staff"], message["mode"]) == ("01", "E1001", "prompt")
    assert abs(message["ts"] - time.time() * 1000) < 10_000
    assert 0 < message["wait_ms"] < 5000
    shown = shows(terminal)
    assert "window" in shown and shown.index("thanks") > shown.index("window")
    sounds = [(e["name"], e["by"]) for e in terminal.of_kind("sound")]
    assert sounds[:2] == [("prompt", "buzzer"), ("thanks", "buzzer")]


@pytest.mark.terminal_settings(voice_module=True)
def test_a_fitted_voice_module_speaks_instead_of_the_buzzer(terminal, listener):
    rate(terminal, 0, 1)
    terminal.wait_count("rated", 1)
    terminal.wait_count("sound", 2)
    sounds = [(e["name"], e["by"]) for e in terminal.of_kind("sound")]
    assert sounds[:2] == [("prompt", "voice"), ("thanks", "voice")]


def test_prompt_topic_opens_a_window_with_its_ticket(terminal, listener, topic_root):
    listener.publish(device_topic(topic_root, "prompt"), {"v": 1, "ticket": "A023"})
    terminal.wait_count("opened", 1)
    terminal.press(0)
    [message] = listener.wait("rating", 1)
    assert (message["ticket"], message["score"], message["mode"]) == ("A023", 5, "prompt")


def test_an_odd_ticket_still_opens_a_window_and_the_rating_counts(terminal, listener, topic_root):
    prompts = [
        json.dumps({"v": 1, "ticket": "A\t023\n"}).encode(),
        json.dumps({"v": 1, "ticket": "Q" * 40}).encode(),
        json.dumps({"v": 1, "ticket": 7}).encode(),
        b'{"v":1,"ticket":"\\ud800A"}',  # a surrogate alone, which no UTF-8 carries
        json.dumps({"v": 1, "ticket": "\U0001f600"}).encode(),  # as "\\ud83d\\ude00"
        b'{"v":1,"ticket":"\xed\xa0\x80\xf4\x90\x80\x80"}',  # raw bytes MicroPython reads
    ]
    for i, prompt in enumerate(prompts, 1):
        listener.client.publish(device_topic(topic_root, "prompt"), prompt, qos=1)
        terminal.wait_count("opened", i)
        terminal.press(0)
        listener.wait("rating", i)
    messages = listener.wait("rating", len(prompts))
    tickets = ["A 023", "Q" * 32, None, "\ufffdA", "\U0001f600", "\ufffd\ufffd"]
    assert [m["ticket"] for m in messages] == tickets
    for message in messages:  # each one the collector takes
        collector_rating.parse(DeviceTopic("site", "ev-1", "rating"), json.dumps(message).encode())


@pytest.mark.terminal_settings(window_s=3)
def test_a_window_closing_unrated_is_a_skipped_rating(terminal, listener, topic_root):
    listener.publish(device_topic(topic_root, "prompt"), {"v": 1, "ticket": "B7"})
    [message] = listener.wait("rating", 1, timeout_s=10)
    assert (message["score"], message["ticket"], message["wait_ms"]) == (None, "B7", None)
    assert message["reason"] is None


def test_presses_with_no_window_are_stray_and_counted(terminal, listener, topic_root):
    terminal.press(0)
    terminal.press(1)
    terminal.wait_count("stray", 2)
    listener.publish(device_topic(topic_root, "config"), {"v": 1, "telemetry_s": 5}, retain=True)
    terminal.wait_for(lambda e: e["ev"] == "config")
    telemetry = listener.wait("telemetry", 2, timeout_s=15)[-1]
    assert telemetry["stray"] == 2 and telemetry["rated"] == 0 and telemetry["prompts"] == 0
    assert telemetry["queue"] == 0 and telemetry["fw"] and telemetry["heap_free"] > 0
    assert not listener.of("rating")


@pytest.mark.terminal_settings(ask_reason=True)
def test_a_poor_score_asks_the_reason_and_sends_one_message(terminal, listener):
    rate(terminal, 4, 1)  # score 1
    terminal.wait_for(lambda e: e["ev"] == "show" and e["state"] == "reason")
    terminal.press(0)  # attitude
    terminal.wait_acked(1)
    [message] = listener.wait("rating", 1)
    assert (message["score"], message["reason"]) == (1, "attitude")
    assert "reason" in [e["name"] for e in terminal.of_kind("sound")]


def test_the_aspect_mode_set_by_config_rates_attitude_then_efficiency_into_the_appraisal(
    terminal, listener, topic_root, influxdb, database, tmp_path
):
    listener.publish(device_topic(topic_root, "config"), {"v": 1, "aspects": True}, retain=True)
    terminal.wait_for(lambda e: e["ev"] == "config" and "aspects" in e["changed"])
    terminal.clerk_key()
    terminal.wait_count("opened", 1)
    time.sleep(0.6)  # a customer's pace: a press within 0.5 s is flagged fast, out of figures
    terminal.press(0)  # attitude: 5
    terminal.wait_for(lambda e: e["ev"] == "show" and e["state"] == "efficiency")
    terminal.press(3)  # efficiency: 2
    terminal.wait_acked(1)
    [message] = listener.wait("rating", 1)
    assert message["aspects"] == {"attitude": 5, "efficiency": 2}
    assert (message["score"], message["reason"]) == (2, "efficiency")
    assert [e["name"] for e in terminal.of_kind("sound")][:3] == [
        "attitude",
        "efficiency",
        "thanks",
    ]
    [stored] = influxdb.query("SELECT attitude, efficiency, score, reason FROM rating", database)
    assert (stored["attitude"], stored["efficiency"], stored["score"]) == (5, 2, 2)
    assert stored["reason"] == "efficiency"
    month = time.strftime("%Y-%m", time.gmtime(message["ts"] / 1000 + 8 * 3600))
    out = tmp_path / "appraisal.csv"
    common = [month, "--influx", influxdb.url, "--db", database, "--out", str(out)]
    assert appraisal_main(common) == 0
    with out.open(encoding="utf-8-sig", newline="") as f:
        clerk = next(row for row in csv.DictReader(f) if row["staff"] == "E1001")
    assert clerk["attitude_rated"] == clerk["efficiency_rated"] == "1"
    assert (clerk["attitude_mean"], clerk["efficiency_mean"]) == ("5.000", "2.000")


@pytest.mark.terminal_settings(mode="free", lockout_s=2)
def test_free_mode_rates_and_locks_out(terminal, listener):
    terminal.press(1)
    terminal.wait_acked(1)
    terminal.press(0)  # within the lock-out
    terminal.wait_count("stray", 1)
    time.sleep(2.2)
    terminal.press(2)
    terminal.wait_acked(2)
    messages = listener.wait("rating", 2)
    assert [(m["score"], m["mode"], m["wait_ms"]) for m in messages] == [
        (4, "free", None),
        (3, "free", None),
    ]


def test_a_stuck_key_is_reported_and_not_counted(terminal, listener, topic_root):
    terminal.clerk_key()
    terminal.wait_count("opened", 1)
    terminal.hold(2)
    terminal.wait_for(lambda e: e["ev"] == "stuck", timeout_s=10)
    state = [s for s in listener.wait("state", 2) if s.get("stuck_keys")]
    assert state and state[-1]["stuck_keys"] == [2] and state[-1]["online"] is True
    seen = len(listener.of("state"))
    terminal.release(2)
    terminal.wait_for(lambda e: e["ev"] == "unstuck")
    assert not terminal.of_kind("rated")  # the held key rated nothing; the window then closed
    freed = listener.wait("state", seen + 1)[seen:]  # the state as it was at the release
    assert "stuck_keys" not in freed[-1] and freed[-1]["online"] is True


def retained(broker, topic):
    """What a client subscribing now is given at once, as `mosquitto_sub -C 1 -W 3` shows it:
    the topic's retained message, or None when none comes within 3 s."""
    got: queue.Queue[object] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, m: got.put(json.loads(m.payload) if m.retain else None)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        return got.get(timeout=3)
    except queue.Empty:
        return None
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_login_set_by_config_is_read_back_from_the_retained_state(
    terminal, listener, mosquitto, topic_root
):
    """As a hall's IT person checks a login: the config published, the terminal's retained
    state says the counter and clerk it took, at once; a logout says staff null. A config that
    changes neither publishes no state."""
    state_topic = device_topic(topic_root, "state")
    config_topic = device_topic(topic_root, "config")
    booted = wait_for(lambda: retained(mosquitto, state_topic))
    assert booted == {
        "v": 1,
        "online": True,
        "fw": booted["fw"],
        "boot": 0,
        "counter": "01",  # the deploy-time settings' (make_terminal)
        "staff": "E1001",
    }
    login = {"v": 1, "counter": "03", "staff": "E1023", "staff_name": "张敏"}
    listener.publish(config_topic, login, retain=True)
    state = wait_for(
        lambda: retained(mosquitto, state_topic), lambda s: s and s["staff"] == "E1023"
    )
    assert state == {**booted, "counter": "03", "staff": "E1023"}
    assert listener.wait("state", 2)[-1] == state  # published as soon as it was taken
    seen = len(listener.of("state"))
    listener.publish(config_topic, {"v": 1, "window_s": 20}, retain=True)
    terminal.wait_for(lambda e: e["ev"] == "config" and e["changed"] == ["window_s"])
    time.sleep(1)
    assert len(listener.of("state")) == seen  # the login unchanged: no state
    listener.publish(config_topic, {"v": 1, "staff": None, "staff_name": None}, retain=True)
    state = wait_for(lambda: retained(mosquitto, state_topic), lambda s: s and s["staff"] is None)
    assert state == {**booted, "counter": "03", "staff": None}
    assert not terminal.of_kind("disconnected")


def test_a_bad_config_is_ignored_and_a_good_one_kept_across_a_reboot(
    mosquitto, micropython, tmp_path, topic_root, listener
):
    config_topic = device_topic(topic_root, "config")
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected")
        listener.publish(config_topic, {"v": 1, "counter": "07", "window_s": "ten"}, retain=True)
        rejected = terminal.wait_for(lambda e: e["ev"] == "config_rejected")
        assert "window_s" in rejected["reason"]
        rate(terminal, 0, 1)
        assert listener.wait("rating", 1)[0]["counter"] == "01"  # the bad message changed nothing
        listener.publish(
            config_topic,
            {"v": 1, "counter": "07", "staff": "E2002", "buttons": [5, 3, 1]},
            retain=True,
        )
        terminal.wait_for(lambda e: e["ev"] == "config")
        terminal.stop()
        # reboot with the broker unreachable: the saved config still applies
        settings = dict(terminal.settings, broker="mqtt://127.0.0.1:1")
        terminal.settings = settings
        terminal.start()
        terminal.clerk_key()
        terminal.wait_count("opened", 1)
        terminal.press(2)
        rated = terminal.wait_for(lambda e: e["ev"] == "rated")
        assert rated["score"] == 1  # buttons [5, 3, 1]
        assert not terminal.of_kind("connected")  # from the saved config: no broker this boot
    finally:
        terminal.stop()


def test_broker_down_for_30_s_with_presses_all_delivered_once(
    own_broker, own_collector, micropython, tmp_path, topic_root
):
    listener = Listener(own_broker, topic_root, "listener-outage")
    terminal = make_terminal(tmp_path / "t", own_broker, topic_root, reconnect_max_s=4)
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected")
        rate(terminal, 0, 1)
        terminal.wait_acked(1)
        own_broker.stop()
        gone = terminal.wait_for(lambda e: e["ev"] == "disconnected", timeout_s=15)
        # the LED line follows the disconnected line: awaited, not read in between
        after = terminal.events.index(gone)
        terminal.wait_for(lambda e: e["ev"] == "show" and e["state"] == "offline", 5, after)
        for n, button in enumerate((1, 2, 3, 4, 0, 1), start=2):
            rate(terminal, button, n)
            terminal.wait_count("rated", n)
            time.sleep(3)
        down_for = 6 * 3
        time.sleep(max(0, 30 - down_for))
        assert len(terminal.of_kind("acked")) == 1
        own_broker.restart()
        for seq in range(2, 8):
            terminal.wait_acked(seq, timeout_s=90)
        messages = listener.wait("rating", 7, timeout_s=30)
    finally:
        terminal.stop()
        listener.close()
    by_seq = {m["seq"]: m["score"] for m in messages}  # a copy sent again is the same rating
    assert by_seq == dict(zip(range(1, 8), [5, 4, 3, 2, 1, 5, 4], strict=True))


def open_sockets(terminal) -> int:
    """The terminal process's open sockets, as the kernel counts them."""
    fds = f"/proc/{terminal.pid}/fd"
    return sum(os.readlink(f"{fds}/{fd}").startswith("socket:") for fd in os.listdir(fds))


def test_sockets_stay_constant_over_twenty_broker_outages(own_broker, micropython, tmp_path):
    """Each outage's socket is closed for real (MicroPython's close() alone leaves it open)."""
    terminal = make_terminal(tmp_path / "t", own_broker, "svc/v1", reconnect_max_s=1)
    terminal.start()
    try:
        terminal.wait_count("connected", 1)
        linked = open_sockets(terminal)
        assert linked == 1
        for outage in range(1, 21):
            own_broker.stop()
            terminal.wait_count("disconnected", outage, timeout_s=15)
            own_broker.restart()
            terminal.wait_count("connected", outage + 1, timeout_s=15)
            assert open_sockets(terminal) == linked, f"after outage {outage}"
    finally:
        terminal.stop()


def test_a_broker_fallen_silent_is_left_and_the_link_made_again(own_broker, micropython, tmp_path):
    """A hung broker keeps the socket open and answers nothing: the terminal ends the link once
    the broker has been silent for one and a half keepalives (4 s here), and links again when
    the broker answers."""
    terminal = make_terminal(tmp_path / "t", own_broker, "svc/v1", reconnect_max_s=1)
    terminal.start()
    try:
        terminal.wait_count("connected", 1)
        own_broker.freeze(True)
        went = time.monotonic()
        gone = terminal.wait_for(lambda e: e["ev"] == "disconnected", timeout_s=15)
        assert "silent" in gone["reason"]
        assert 5.0 <= time.monotonic() - went < 9.0  # 6 s after the last packet, plus a tick
        own_broker.freeze(False)
        terminal.wait_count("connected", 2, timeout_s=15)
    finally:
        own_broker.freeze(False)
        terminal.stop()


def test_wifi_loss_shows_at_once_and_its_return_relinks_at_once(terminal, listener):
    """Offline within 1 s of Wi-Fi going (not at the keepalive's time-out); linked again within
    2 s of its return, and a rating pressed meanwhile then stored and acknowledged."""
    seen = len(terminal.events)
    went = time.monotonic()
    terminal.wifi(False)
    terminal.wait_for(
        lambda e: e["ev"] == "show" and e["state"] == "offline", timeout_s=5, after=seen
    )
    assert time.monotonic() - went < 1.0
    rate(terminal, 0, 1)
    terminal.wait_count("rated", 1)
    came = time.monotonic()
    terminal.wifi(True)
    terminal.wait_count("connected", 2, timeout_s=5)
    assert time.monotonic() - came < 2.0
    terminal.wait_acked(1, timeout_s=5)


def test_wifi_drop_is_recovered_without_a_reboot(terminal, listener):
    terminal.wifi(False)
    terminal.wait_for(lambda e: e["ev"] == "disconnected", timeout_s=10)
    rate(terminal, 0, 1)
    terminal.wait_count("rated", 1)
    time.sleep(1)
    assert not terminal.of_kind("acked")
    terminal.wifi(True)
    terminal.wait_acked(1, timeout_s=90)
    assert not terminal.of_kind("reset") and len(terminal.of_kind("boot")) == 1
    assert listener.wait("rating", 1)[0]["seq"] == 1


def test_power_cut_loses_no_rating_and_reuses_no_seq(
    mosquitto, micropython, tmp_path, topic_root, listener
):
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root, broker="mqtt://127.0.0.1:1")
    terminal.start()
    for n in range(1, 4):
        rate(terminal, n - 1, n)
    terminal.wait_count("rated", 3)
    terminal.power_cut()
    terminal.settings = dict(terminal.settings, broker=mosquitto.url)
    terminal.start()
    boot = terminal.wait_for(lambda e: e["ev"] == "boot")
    assert (boot["boot"], boot["seq"], boot["queue"]) == (1, 3, 3)
    rate(terminal, 4, 1)
    terminal.wait_acked(4, timeout_s=30)
    terminal.stop()
    messages = listener.wait("rating", 4)
    assert [(m["seq"], m["boot"]) for m in messages] == [(1, 0), (2, 0), (3, 0), (4, 1)]
    # the last will, after the cut: the broker sends it once it has seen the link drop
    will = {"v": 1, "online": False}
    assert will in wait_for(lambda: listener.of("state"), lambda states: will in states)


@pytest.mark.terminal_settings(sim={"ntp": False})
def test_a_press_before_the_clock_is_known_is_stamped_once_it_is(terminal, listener):
    rate(terminal, 0, 1)
    pressed_ms = time.time() * 1000
    terminal.wait_count("rated", 1)
    time.sleep(2)
    assert not listener.of("rating")  # held for the clock
    terminal.ntp(True)
    terminal.wait_acked(1, timeout_s=60)
    [message] = listener.wait("rating", 1)
    assert abs(message["ts"] - pressed_ms) < 1500  # the press time, not the send time


def test_a_boot_that_never_learnt_the_time_sends_null(
    mosquitto, micropython, tmp_path, topic_root, listener
):
    terminal = make_terminal(
        tmp_path / "t", mosquitto, topic_root, sim={"ntp": False}, broker="mqtt://127.0.0.1:1"
    )
    terminal.start()
    rate(terminal, 0, 1)
    terminal.wait_count("rated", 1)
    terminal.power_cut()
    terminal.settings = dict(terminal.settings, broker=mosquitto.url)
    terminal.start()
    terminal.wait_acked(1, timeout_s=30)
    terminal.stop()
    [message] = listener.wait("rating", 1)
    assert message["ts"] is None and message["boot"] == 0


def test_a_crashed_task_leads_to_a_clean_reboot(terminal, listener):
    terminal.crash()
    reset = terminal.wait_for(lambda e: e["ev"] == "reset", timeout_s=15)
    assert "keys" in reset["reason"]
    assert terminal.exit_code() == 3
    terminal.start()
    assert terminal.wait_for(lambda e: e["ev"] == "boot")["boot"] == 1
    terminal.wait_for(lambda e: e["ev"] == "connected")


def test_a_full_queue_refuses_new_ratings_visibly(
    mosquitto, collector, micropython, tmp_path, topic_root
):
    terminal = make_terminal(
        tmp_path / "t", mosquitto, topic_root, broker="mqtt://127.0.0.1:1", queue_bytes=70
    )  # room for two ratings
    terminal.start()
    try:
        for n in range(1, 4):
            rate(terminal, 0, n)
            time.sleep(0.3)
        dropped = terminal.wait_for(lambda e: e["ev"] == "dropped")
        assert dropped["seq"] == 3
        assert [e["seq"] for e in terminal.of_kind("rated")] == [1, 2]
        assert shows(terminal).count("thanks") == 2 and "error" in shows(terminal)
    finally:
        terminal.stop()
    terminal.settings = dict(terminal.settings, broker=mosquitto.url)
    terminal.start()
    try:
        assert terminal.wait_for(lambda e: e["ev"] == "boot")["queue"] == 2  # the oldest kept
        terminal.wait_acked(2, timeout_s=30)
    finally:
        terminal.stop()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"site": "Not A Site"}, "site"),
        ({"keepalive_s": "x"}, "keepalive_s must be a whole number"),  # failed each connect
        ({"clerk_key": 1}, "clerk_key must be true or false"),  # MicroPython: 1 is no bool
    ],
)
def test_bad_settings_show_an_error_and_stop(mosquitto, micropython, tmp_path, bad, why):
    terminal = make_terminal(tmp_path / "t", mosquitto, "svc/v1", **bad)
    terminal.start()
    try:
        error = terminal.wait_for(lambda e: e["ev"] == "error")
        assert why in error["msg"]
        with pytest.raises(FirmwareError):
            terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=3)
    finally:
        terminal.stop()


WRAP_MS = 1 << 30  # an ESP32's ticks_ms() wraps here, 12.4 days after its boot
WEEK_MS = 7 * 24 * 3600 * 1000  # more than the ±2^29 ms a ticks_diff() reads right


def test_a_week_past_the_tick_wrap_keeps_uptime_and_a_held_press_time_right(
    own_broker, micropython, tmp_path, topic_root
):
    """The board's ticks start 5 s before an ESP32's wrap, then a week passes at once while a
    press made before the clock was known waits for the broker: its time and the uptime are
    still right."""
    listener = Listener(own_broker, topic_root, "listener-wrap")
    sim = {"ntp": False, "ticks_ms": WRAP_MS - 5000}
    terminal = make_terminal(
        tmp_path / "t", own_broker, topic_root, sim=sim, telemetry_s=5, reconnect_max_s=1
    )
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected")
        time.sleep(6)  # past the wrap
        own_broker.stop()
        terminal.wait_for(lambda e: e["ev"] == "disconnected", timeout_s=15)
        rate(terminal, 0, 1)
        pressed_ms = time.time() * 1000
        terminal.wait_count("rated", 1)
        terminal.ntp(True)
        terminal.elapse(31_000)  # the clock is tried every 30 s until it works: now
        terminal.wait_for(lambda e: e["ev"] == "time" and e["synced"])
        terminal.elapse(WEEK_MS)
        own_broker.restart()
        [message] = listener.wait("rating", 1, timeout_s=30)
        reports = listener.wait("telemetry", 3, timeout_s=30)
    finally:
        terminal.stop()
        listener.close()
    assert abs(message["ts"] - pressed_ms) < 1500  # the press's time, not a wrap away
    uptimes = [r["uptime_s"] for r in reports]
    assert uptimes == sorted(uptimes) and uptimes[0] >= 0
    assert uptimes[-1] >= WEEK_MS // 1000


@pytest.mark.terminal_settings(sim={"ntp": False, "ticks_ms": WRAP_MS - 5000})
def test_a_week_into_a_boot_without_the_clock_a_press_goes_at_once_undated(terminal, listener):
    terminal.elapse(WEEK_MS)  # long past the 5 minutes a press waits for the clock
    rate(terminal, 0, 1)
    [message] = listener.wait("rating", 1, timeout_s=10)
    assert message["ts"] is None


def test_every_copy_of_a_rating_carries_its_first_copys_time_across_power_cuts(
    mosquitto, micropython, tmp_path, topic_root
):
    """No collector: nothing is acknowledged, and every copy is seen. Seq 1 is pressed before
    the clock is known and stamped late; seq 2 waits for the clock in vain and goes undated.
    Resent after power cuts and reconnections, with the clock known or not, each copy of each
    is its first copy."""
    listener = Listener(mosquitto, topic_root, "listener-stamps")
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root, sim={"ntp": False})

    def copies_after(mark, *seqs):
        """Wait for a copy of each of these seqs among the ratings after the first `mark`."""
        for seq in seqs:
            copies = wait_for(
                lambda s=seq: [m for m in listener.of("rating")[mark:] if m["seq"] == s]
            )
            assert copies, f"no copy of {seq}: {listener.of('rating')}"

    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected")
        rate(terminal, 0, 1)
        pressed_ms = time.time() * 1000
        terminal.wait_count("rated", 1)
        terminal.ntp(True)
        terminal.elapse(31_000)  # the clock is tried again at once
        copies_after(0, 1)
        mark = len(listener.of("rating"))
        terminal.power_cut()
        terminal.start()  # boot 1, without the clock
        copies_after(mark, 1)
        rate(terminal, 0, 1)
        terminal.wait_count("rated", 1)
        mark = len(listener.of("rating"))
        terminal.elapse(301_000)  # longer than a press waits for the clock
        copies_after(mark, 2)
        terminal.ntp(True)
        terminal.elapse(31_000)
        terminal.wait_for(lambda e: e["ev"] == "time" and e["synced"])
        mark = len(listener.of("rating"))
        relink(terminal)  # a new connection sends both again, now the clock is known
        copies_after(mark, 1, 2)
        mark = len(listener.of("rating"))
        terminal.power_cut()
        terminal.start()  # boot 2
        copies_after(mark, 1, 2)
    finally:
        terminal.stop()
        listener.close()
    by_seq: dict[int, set[int | None]] = {}
    for message in listener.of("rating"):
        by_seq.setdefault(message["seq"], set()).add(message["ts"])
    [stamp] = by_seq[1]
    assert stamp is not None and abs(stamp - pressed_ms) < 1500
    assert by_seq == {1: {stamp}, 2: {None}}
