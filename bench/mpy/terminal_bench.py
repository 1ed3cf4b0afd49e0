# Runs under the MicroPython Unix port with the firmware on the path, on a
# littlefs flash image in the current folder, against a real broker and the
# real collector behind it (whose acks let the terminal forget a rating):
#   micropython terminal_bench.py BROKER_PORT TOPIC_ROOT MODE N
# MODE soak:     N ratings as fast as the terminal takes them, peak heap printed
#      latency:  N ratings one at a time, press to stored-and-acknowledged in µs
#      fill:     N ratings queued with the broker unreachable, flash used printed
#      drain:    the queue sent after the outage, time until every one is acknowledged
#      baseline: N bare QoS 1 publishes with the same MQTT client, one at a time (µs)
# Prints one JSON line of figures. The terminal is the real one; only the keys
# are bypassed (ratings enter the flow directly), since key debouncing would
# pace the run at tens of ms a press.
import asyncio
import gc
import json
import os
import sys
from array import array
from time import ticks_diff, ticks_us

import board_unix
import store
import uplink
import vfs
from config import Config
from mqtt import MQTTClient
from outbox import Outbox
from simflash import FileFlash
from terminal import Terminal
from ticks import ms

port, root, mode, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
STARTED_US = ticks_us()


def now_us():
    """µs since the start: small enough for an array of 32-bit ints (the Unix port's ticks_us
    counts from the machine's boot, and a truncated one could read as negative)."""
    return ticks_diff(ticks_us(), STARTED_US)


class BenchBoard(board_unix.Board):
    """The simulated board, without the control channel, noting when each rating is acked."""

    def __init__(self):
        super().__init__()
        self.first_seq = 0
        timed = count if mode == "latency" else 0  # only latency keeps per-rating times
        self.acked_at = array("i", [-1] * (timed + 1))  # by seq - first_seq
        self.errors = 0
        self.first_errors = []  # what the first few were, for the figures

    def start(self):
        pass

    def emit(self, event, **fields):
        if event == "acked":
            i = fields["seq"] - self.first_seq
            if 0 <= i < len(self.acked_at):
                self.acked_at[i] = now_us()
        elif event in ("dropped", "crash") or (event == "disconnected" and mode != "fill"):
            self.errors += 1
            if len(self.first_errors) < 3:
                self.first_errors.append("%s: %s" % (event, fields.get("reason", fields)))


def mount():
    flash = FileFlash("flash.img")
    if flash.fresh:
        vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), "/flash")
    return flash


def used_kb():
    st = os.statvfs("/flash")
    return (st[2] - st[3]) * st[0] / 1024


async def baseline():
    client = MQTTClient("bench-baseline", "127.0.0.1", port, keepalive=30)
    acked = asyncio.Event()
    client.on_puback = lambda pid: acked.set()
    await client.connect(clean_session=True)
    reader = asyncio.create_task(client.read_loop())
    payload = b'{"v":1,"seq":1,"boot":0,"ts":1795347568123,"score":4,"reason":null}'
    times = array("i", [0] * count)
    for i in range(count):
        acked.clear()
        start = ticks_us()
        await client.publish("bench/baseline", payload, 1)
        await acked.wait()
        times[i] = ticks_diff(ticks_us(), start)
    reader.cancel()
    await client.disconnect()
    return {"mode": "baseline", "ms": times}


def defaults():
    """The settings' defaults, the settings module gone after, as main.py leaves it: the
    terminal's heap holds no more than on a board."""
    import settings

    try:
        return settings.DEFAULTS.copy()
    finally:
        del sys.modules["settings"]


async def run_terminal():
    mount()
    board = BenchBoard()
    broker_port = 1 if mode == "fill" else port
    values = defaults()
    values.update(
        {
            "site": "bench",
            "device": "ev-bench",
            "topic_root": root,
            "mode": "free",
            "lockout_s": 0,
            "ask_reason": False,
            "counter": "01",
            "staff": "E1001",
        }
    )
    values["broker_addr"] = ("127.0.0.1", broker_port, None, None)
    counters = store.Counters("/flash/counters.json")
    config = Config("/flash/config.json", values)
    box = Outbox("/flash/queue")
    terminal = Terminal(board, values, config, counters, box)
    figures = {"mode": mode, "count": count, "queued": len(box)}
    drain_started = ms()
    asyncio.create_task(terminal.run())
    if mode != "drain":
        await asyncio.sleep_ms(200)
    gc.collect()
    board.first_seq = counters.seq + 1
    pressed_at = array("i", [0] * (count if mode == "latency" else 1))
    peak_alloc = peak_live = 0
    started = ms()
    if mode == "drain":
        while len(box):
            await asyncio.sleep_ms(5)
        figures["drain_ms"] = ms() - drain_started
    else:
        base_kb = used_kb()
        for i in range(count):
            if mode == "soak":
                while len(box) > uplink.IN_FLIGHT:  # the terminal's own pace: a window out
                    await asyncio.sleep_ms(1)
            seq_before = counters.seq
            terminal.flow.tick(ms())
            terminal.press(i % 5, ms())
            pressed_at[i if mode == "latency" else 0] = now_us()
            assert counters.seq == seq_before + 1
            if mode == "latency":
                while board.acked_at[i] < 0:
                    await asyncio.sleep_ms(0)
            if mode in ("fill",):
                continue
            peak_alloc = max(peak_alloc, gc.mem_alloc())
            if i % 100 == 0:
                gc.collect()
                peak_live = max(peak_live, gc.mem_alloc())
            await asyncio.sleep_ms(0)
        if mode == "fill":
            figures["queued"] = len(box)
            figures["flash_kb"] = used_kb() - base_kb
            figures["queue_bytes"] = box.bytes
        else:
            while len(box):
                await asyncio.sleep_ms(5)
            figures["elapsed_ms"] = ms() - started
            figures["peak_mem_alloc"] = peak_alloc
            figures["peak_live_after_gc"] = peak_live
            figures["heap_total"] = gc.mem_alloc() + gc.mem_free()
            if mode == "latency":  # in place: a list of them would not fit the heap
                for i in range(count):
                    pressed_at[i] = ticks_diff(board.acked_at[i], pressed_at[i])
                figures["ms"] = pressed_at
    figures["errors"] = board.errors
    figures["first_errors"] = board.first_errors
    return figures


def print_figures(figures):
    """One JSON line, writing the timings (µs) piece by piece instead of as a list."""
    times = figures.pop("ms", None)
    text = json.dumps(figures)
    if times is None:
        print(text)
        return
    sys.stdout.write(text[:-1] + ', "ms": [')
    for i in range(len(times)):
        sys.stdout.write(("%d" if i == 0 else ",%d") % times[i])
    print("]}")


print_figures(asyncio.run(baseline() if mode == "baseline" else run_terminal()))
sys.exit(0)
