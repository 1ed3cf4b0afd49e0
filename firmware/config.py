# What a hall sets on a terminal: the retained config topic (PROTOCOL.md),
# checked field by field. A message with any bad field is ignored whole, with
# the reason, and the current config kept; a good one is merged and saved so
# that a reboot without network keeps it.
import store

DEFAULTS = {
    "counter": None,
    "staff": None,
    "staff_name": None,
    "mode": "prompt",
    "window_s": 10,
    "buttons": [5, 4, 3, 2, 1],
    "ask_reason": True,
    "telemetry_s": 60,
    "lockout_s": 5,
}

_COUNTER_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
_STAFF_CHARS = _COUNTER_CHARS + "_"


class ConfigError(Exception):
    pass


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _name(value, chars, longest):
    return value is None or (
        isinstance(value, str) and 1 <= len(value) <= longest and all(c in chars for c in value)
    )


def _check(key, value):
    """The reason the value is bad, or None."""
    if key == "counter":
        ok = _name(value, _COUNTER_CHARS, 8)
    elif key == "staff":
        ok = _name(value, _STAFF_CHARS, 16)
    elif key == "staff_name":
        ok = value is None or (isinstance(value, str) and len(value) <= 32)
    elif key == "mode":
        ok = value in ("prompt", "free")
    elif key == "ask_reason":
        ok = isinstance(value, bool)
    elif key == "buttons":
        ok = (
            isinstance(value, list)
            and 3 <= len(value) <= 5
            and all(_is_int(s) and 1 <= s <= 5 for s in value)
        )
    else:
        low, high = {"window_s": (3, 120), "telemetry_s": (5, 3600), "lockout_s": (0, 60)}[key]
        ok = _is_int(value) and low <= value <= high
    return None if ok else "%s: %r is not allowed" % (key, value)


def changes(message):
    """The known fields of a config message, checked; raises ConfigError."""
    if not isinstance(message, dict):
        raise ConfigError("config must be a JSON object")
    if message.get("v", 1) != 1:
        raise ConfigError("unknown config version %r" % message.get("v"))
    found = {}
    for key in DEFAULTS:
        if key in message:
            why = _check(key, message[key])
            if why:
                raise ConfigError(why)
            found[key] = message[key]
    return found


class Config:
    """The current config: defaults, then deploy-time settings, then what was saved."""

    def __init__(self, path, initial):
        self.path = path
        self.values = dict(DEFAULTS)
        for source in (initial, store.load(path, {})):
            try:
                self.values.update(changes(source))
            except ConfigError:
                pass  # a bad saved or initial value keeps the defaults

    def __getitem__(self, key):
        return self.values[key]

    def apply(self, message):
        """Merge a checked config message and save it; returns the changed keys."""
        new = changes(message)
        changed = [k for k in new if self.values[k] != new[k]]
        if changed:
            self.values.update(new)
            store.save(self.path, self.values)
        return changed
