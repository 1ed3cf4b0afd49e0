# The wire and storage contract (docs/contract.md: the contract and the project's
# extensions), each rule written once.
#
# Plain MicroPython: it ships in the terminal's image (`import contract`) and
# the collector, simulator, dashboards and tools import it as
# `firmware.contract`. The annotations are for mypy; MicroPython ignores them.
# MicroPython's `re` has no {m,n}, so a name rule is written as character
# classes and lengths: valid_name() checks it here, and name_pattern() gives
# the CPython side the same rule as a regular expression for its fast paths.

TYPE_CHECKING = False  # mypy takes it as True; MicroPython has no typing module to import
if TYPE_CHECKING:
    from collections.abc import Iterator

VERSION = 1
ROOT = "svc/v1"

# --- topics: {root}/{site}/{device}/{kind} and {root}/{site}/{kind} ---

# kind: (QoS, retained, who publishes). The publisher is an account role of the broker's ACL
# (broker/acl.py): a device publishes on its own topics only, the rest read them; a queue
# system's prompts come from a tools account.
DEVICE_TOPICS = {
    "rating": (1, False, "device"),
    "state": (1, True, "device"),
    "telemetry": (0, False, "device"),
    "config": (1, True, "tools"),
    "prompt": (1, False, "tools"),
    "ack": (1, False, "collector"),  # extension: the seqs a collector has stored
    # extensions, updates over the air (docs/firmware.md): an offer, a terminal's ask for a
    # piece of what is offered, and the piece
    "update": (1, True, "tools"),
    "fetch": (0, False, "device"),
    "chunk": (0, False, "tools"),
}
SITE_TOPICS = {"alert": (1, False, "collector")}
# a broker's URL scheme (mqtts: over TLS) and its default port
BROKER_PORTS = {"mqtt": 1883, "mqtts": 8883}


def topic(root: str, site: str, device: str, kind: str) -> str:
    return "%s/%s/%s/%s" % (root, site, device, kind)


def site_topic(root: str, site: str, kind: str) -> str:
    return "%s/%s/%s" % (root, site, kind)


# --- names: (first character, further characters, shortest, longest) ---

NAMES = {
    "site": ("a-z0-9", "a-z0-9-", 1, 32),
    "device": ("a-z0-9", "a-z0-9-", 1, 32),
    "counter": ("0-9A-Za-z-", "0-9A-Za-z-", 1, 8),
    "staff": ("0-9A-Za-z_-", "0-9A-Za-z_-", 1, 16),
    "fw": ("0-9A-Za-z._+-", "0-9A-Za-z._+-", 1, 32),
}
STAFF_NAME_MAX = 32  # characters of config's staff_name (any text)


def _allowed(c: str, chars: str) -> bool:
    """Whether c is one of the characters 'a-z0-9-' names (a '-' first or last is itself).
    Read from the rule each time: expanded tables would cost a terminal's heap 1.5 KB."""
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            if chars[i] <= c <= chars[i + 2]:
                return True
            i += 3
        elif c == chars[i]:
            return True
        else:
            i += 1
    return False


def valid_name(kind: str, value: object) -> bool:
    first, rest, shortest, longest = NAMES[kind]
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        return False
    if not _allowed(value[0], first):
        return False
    for c in value[1:]:
        if not _allowed(c, rest):
            return False
    return True


def name_pattern(kind: str) -> str:
    """The rule as a regular expression's text, as the contract (docs/contract.md) writes it."""
    first, rest, shortest, longest = NAMES[kind]
    if first == rest:
        return "[%s]{%d,%d}" % (rest, shortest, longest)
    return "[%s][%s]{%d,%d}" % (first, rest, shortest - 1, longest - 1)


# --- the rating ---

RATING_FIELDS = (
    "seq", "boot", "ts", "score", "reason", "counter", "staff", "ticket", "mode", "wait_ms",
    "aspects",
)  # fmt: skip
SCORES = (1, 2, 3, 4, 5)  # 5 非常满意 ... 1 非常不满意
POOR_MAX = 2  # a score this low or lower is poor, and only such a score has a reason
GOOD_MIN = 3
SATISFIED_MIN = 4
REASONS = ("attitude", "efficiency", "expertise", "environment", "other")
MODES = ("prompt", "free")
SEQ_MIN = 1
INT_MAX = 2**63 - 1  # the largest integer InfluxDB stores
SEQ_DIGITS = 10**6  # a rating's point time: ts ms, with seq mod 10^6 in the ns below
# the last press time whose point time InfluxDB can hold (2262-04-11)
MAX_TS_MS = (2**63 - 2 - (SEQ_DIGITS - 1)) // SEQ_DIGITS
TICKET_MAX = 32  # characters, none of them a control character (below 0x20)
MAX_PAYLOAD_BYTES = 4096  # the largest message the collector takes
# The largest MQTT packet a hall's broker passes on (svc-broker's max_packet_size): a message
# of MAX_PAYLOAD_BYTES with its topic and headers, room for every message of the contract.
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 1024
# The largest packet a terminal reads, config, prompt or ack (the contract's are under 700
# bytes, an ack of ACK_MAX_SEQS seqs too): its heap is small, and it lets a longer one go.
DEVICE_READ_BYTES = 1024


def point_time_ns(ts: int, seq: int) -> int:
    """A dated rating's point time: its identity in InfluxDB, the same for every copy."""
    return ts * SEQ_DIGITS + seq % SEQ_DIGITS


def score_classes(score: int) -> "dict[str, int]":
    """The share fields of a scored rating (docs/contract.md), each 1 or 0."""
    return {
        "satisfied": int(score >= SATISFIED_MIN),
        "good": int(score >= GOOD_MIN),
        "poor": int(score <= POOR_MAX),
    }


def valid_ticket(value: object) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= TICKET_MAX
        and all(ord(c) >= 32 for c in value)
    )


def clean_ticket(ticket: object) -> "str | None":
    """A prompt's ticket as the wire carries it: a control character (tab, newline...)
    made a space, spaces at either end left out, cut to TICKET_MAX characters, and only
    characters strict UTF-8 can carry (_characters); anything else is no ticket. The window
    opens either way: a queue system's odd ticket must never cost a customer their rating.
    Read a character at a time and no further than needed: a ticket may be kilobytes long,
    and a list of its characters would not fit a terminal's heap."""
    if not isinstance(ticket, str):
        return None
    text = ""
    count = 0
    for c in _characters(ticket):
        if ord(c) < 32:
            c = " "
        if count or c != " ":
            text += c
            count += 1
            if count == TICKET_MAX:
                break
    return text.rstrip(" ") or None


def _characters(text: str) -> "Iterator[str]":
    """text's characters as UTF-8 can carry them. MicroPython's JSON reader leaves the escapes
    of a character past U+FFFF ("\\ud83d\\ude00") as two surrogates, which it would write
    as bytes no UTF-8 reader takes: a pair is joined into its character, and a surrogate
    alone, or a code point past U+10FFFF (its reader lets raw bytes of one through), is
    U+FFFD, the replacement character."""
    high = 0  # a high surrogate, waiting for its low half
    for c in text:
        n = ord(c)
        if high:
            if 0xDC00 <= n <= 0xDFFF:
                yield chr(0x10000 + ((high - 0xD800) << 10) + n - 0xDC00)
                high = 0
                continue
            yield "\ufffd"
            high = 0
        if 0xD800 <= n <= 0xDBFF:
            high = n
        elif 0xDC00 <= n <= 0xDFFF or n > 0x10FFFF:
            yield "\ufffd"
        else:
            yield c
    if high:
        yield "\ufffd"


def rating(
    seq: int,
    boot: int,
    ts: "int | None",
    score: "int | None",
    reason: "str | None",
    counter: "str | None",
    staff: "str | None",
    ticket: "str | None",
    mode: str,
    wait_ms: "int | None",
    aspects: "dict[str, int | None] | None" = None,
) -> "dict[str, object]":
    message = {
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
    }  # type: dict[str, object]
    if aspects is not None:  # only in the aspect mode: the base contract's message is unchanged
        message["aspects"] = aspects
    return message


# --- aspects (extension): attitude and efficiency rated apart ---

ASPECTS = ("attitude", "efficiency")  # asked in this order; each is a reason too


def valid_aspects(value: object) -> bool:
    """An object with each aspect's score, 1..5, or null when it was left unanswered."""
    if not isinstance(value, dict) or len(value) != len(ASPECTS):
        return False
    for name in ASPECTS:
        if name not in value:  # as many names, but another among them
            return False
        score = value[name]
        if score is not None and not (_is_int(score) and score in SCORES):
            return False
    return True


def aspects_overall(aspects: "dict[str, int | None]") -> "tuple[int | None, str | None]":
    """The score and reason a rating of aspects carries: its lowest answered score (a customer
    unhappy with either aspect is not satisfied) and, when that is poor, the aspect it was
    (the first asked, on a tie); (None, None) when neither was answered: skipped."""
    worst = None  # type: str | None
    for name in ASPECTS:
        score = aspects[name]
        if score is not None and (worst is None or score < aspects[worst]):  # type: ignore[operator]
            worst = name
    if worst is None:
        return None, None
    score = aspects[worst]
    return score, (worst if score <= POOR_MAX else None)  # type: ignore[operator]


# --- telemetry and state ---

# running counters since the terminal was first set up (a lost report loses nothing)
STATS = ("prompts", "rated", "skipped", "stray", "dropped", "requeued")
TELEMETRY_COUNTS = ("uptime_s", "heap_free", "queue") + STATS
RSSI_RANGE = (-127, 0)
BATTERY_MV_RANGE = (0, 100000)


# --- config (retained) ---

DEFAULT_BUTTONS = (5, 4, 3, 2, 1)  # the buttons' scores, left to right
CONFIG_DEFAULTS = {
    "counter": None,
    "staff": None,
    "staff_name": None,
    "mode": "prompt",
    "window_s": 10,
    "buttons": list(DEFAULT_BUTTONS),
    "ask_reason": True,
    "telemetry_s": 60,
    "lockout_s": 5,
    "aspects": False,  # extension: attitude, then efficiency, instead of one score
}
CONFIG_RANGES = {"window_s": (3, 120), "telemetry_s": (5, 3600), "lockout_s": (0, 60)}
BUTTONS_COUNT = (3, 5)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def valid_seq(value: object) -> bool:
    return _is_int(value) and SEQ_MIN <= value <= INT_MAX  # type: ignore[operator]


def config_problem(key: str, value: object) -> "str | None":
    """Why a config field's value is not allowed, or None when it is."""
    if key in ("counter", "staff"):
        ok = value is None or valid_name(key, value)
    elif key == "staff_name":
        ok = value is None or (isinstance(value, str) and len(value) <= STAFF_NAME_MAX)
    elif key == "mode":
        ok = value in MODES
    elif key in ("ask_reason", "aspects"):
        ok = isinstance(value, bool)
    elif key == "buttons":
        ok = (
            isinstance(value, list)
            and BUTTONS_COUNT[0] <= len(value) <= BUTTONS_COUNT[1]
            and all(_is_int(s) and s in SCORES for s in value)
        )
    else:
        low, high = CONFIG_RANGES[key]
        ok = _is_int(value) and low <= value <= high  # type: ignore[operator]
    return None if ok else "%s: %r is not allowed" % (key, value)


# --- ack (extension): what a collector has stored, for the terminal to forget ---

ACK_MAX_SEQS = 32  # seqs in one ack message at most: its list must fit a terminal's heap


def ack(seqs: "list[int]") -> "dict[str, object]":
    return {"v": VERSION, "seqs": seqs}


def acked_seqs(message: object) -> "list[int]":
    """The seqs an ack message names; [] for anything that is not one."""
    if not isinstance(message, dict) or message.get("v") != VERSION:
        return []
    seqs = message.get("seqs")
    if not isinstance(seqs, list):
        return []
    for s in seqs:
        if not valid_seq(s):  # a copy only then: a terminal's heap is small
            return [s for s in seqs if valid_seq(s)]
    return seqs
