# The wire contract (shared/PROTOCOL.md) as the terminal speaks it.
import json
import time

VERSION = 1
FW_VERSION = "0.2.0"
SCORES = (1, 2, 3, 4, 5)
REASONS = ("attitude", "efficiency", "expertise", "environment", "other")
TICKET_MAX = 32  # characters of a ticket on the wire, none of them a control character

# Some ports count time from 2000; the wire always counts from 1970.
EPOCH_OFFSET_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0


def unix_ms():
    return time.time_ns() // 1000000 + EPOCH_OFFSET_MS


def topic(root, site, device, kind):
    return "%s/%s/%s/%s" % (root, site, device, kind)


def clean_ticket(ticket):
    """A prompt's ticket as the wire carries it: 1 to TICKET_MAX characters, a control
    character (tab, newline...) made a space; anything else is no ticket. The window opens
    either way: a queue system's odd ticket must never cost a customer their rating."""
    if not isinstance(ticket, str):
        return None
    text = "".join(" " if ord(c) < 32 else c for c in ticket).strip()[:TICKET_MAX]
    return text or None


def rating(seq, boot, ts, score, counter, staff, mode, reason=None, ticket=None, wait_ms=None):
    return {
        "v": VERSION,
        "seq": seq,
        "boot": boot,
        "ts": ts,
        "score": score,
        "reason": reason,
        "counter": counter,
        "staff": staff,
        "ticket": ticket,
        "mode": mode,
        "wait_ms": wait_ms,
    }


def state(online, boot=None):
    if not online:
        return {"v": VERSION, "online": False}
    return {"v": VERSION, "online": True, "fw": FW_VERSION, "boot": boot}


def encode(message):
    return json.dumps(message, separators=(",", ":")).encode()


def telemetry(boot, uptime_s, rssi, heap_free, queue, battery_mv, stats, stuck_keys, time_known):
    """PROTOCOL.md's telemetry, with the compatible extensions dropped, stuck_keys, time_known."""
    return {
        "v": VERSION,
        "boot": boot,
        "uptime_s": uptime_s,
        "rssi": rssi,
        "heap_free": heap_free,
        "queue": queue,
        "fw": FW_VERSION,
        "battery_mv": battery_mv,
        "prompts": stats["prompts"],
        "rated": stats["rated"],
        "skipped": stats["skipped"],
        "stray": stats["stray"],
        "dropped": stats["dropped"],
        "stuck_keys": stuck_keys,
        "time_known": time_known,
    }
