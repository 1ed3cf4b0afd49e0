# The terminal's own messages, built to the contract (contract.py).
import json
import time

import contract

FW_VERSION = "0.4.0"

# Some ports count time from 2000; the wire always counts from 1970.
EPOCH_OFFSET_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0


def unix_ms():
    return time.time_ns() // 1000000 + EPOCH_OFFSET_MS


def encode(message):
    return json.dumps(message, separators=(",", ":")).encode()


def state(online, boot=None, counter=None, staff=None):
    """The retained state; the will is {"v":1,"online":false}. Online, it carries the compatible
    extensions counter and staff: the config's (null while none is set), so that whoever set
    a login can read back that the terminal took it."""
    if not online:
        return {"v": contract.VERSION, "online": False}
    return {
        "v": contract.VERSION,
        "online": True,
        "fw": FW_VERSION,
        "boot": boot,
        "counter": counter,
        "staff": staff,
    }


def telemetry(boot, uptime_s, rssi, heap_free, queue, battery_mv, stats, stuck_keys, time_known):
    """The contract's telemetry (docs/contract.md), with the compatible extensions dropped,
    requeued (both among the stats), stuck_keys and time_known."""
    message = {
        "v": contract.VERSION,
        "boot": boot,
        "uptime_s": uptime_s,
        "rssi": rssi,
        "heap_free": heap_free,
        "queue": queue,
        "fw": FW_VERSION,
        "battery_mv": battery_mv,
        "stuck_keys": stuck_keys,
        "time_known": time_known,
    }
    for name in contract.STATS:
        message[name] = stats[name]
    return message
