# What a hall sets on a terminal: the retained config topic (docs/contract.md),
# checked field by field. A message with any bad field is ignored whole, with
# the reason, and the current config kept; a good one is merged and saved so
# that a reboot without network keeps it.
import contract
import store

DEFAULTS = contract.CONFIG_DEFAULTS


class ConfigError(Exception):
    pass


def changes(message):
    """The known fields of a config message, checked; raises ConfigError."""
    if not isinstance(message, dict):
        raise ConfigError("config must be a JSON object")
    if message.get("v", contract.VERSION) != contract.VERSION:
        raise ConfigError("unknown config version %r" % message.get("v"))
    found = {}
    for key in DEFAULTS:
        if key in message:
            why = contract.config_problem(key, message[key])
            if why:
                raise ConfigError(why)
            found[key] = message[key]
    return found


class Config:
    """The current config: defaults, then deploy-time settings, then what was saved at
    `path` (None: kept in memory only, as scale mode's virtual terminals do)."""

    def __init__(self, path, initial):
        self.path = path
        self.unsaved = False  # in use, its save failed: the next message saves it
        self.values = dict(DEFAULTS)
        for source in (initial, store.load(path, {}) if path else {}):
            try:
                self.values.update(changes(source))
            except ConfigError:
                pass  # a bad saved or initial value keeps the defaults

    def __getitem__(self, key):
        return self.values[key]

    def apply(self, message):
        """Merge a checked config message and save it; returns the changed keys. A save that
        fails raises its OSError with the config merged, in use: the next message, the
        retained config coming again with the next connection, saves it."""
        new = changes(message)
        changed = [k for k in new if self.values[k] != new[k]]
        if changed or self.unsaved:
            self.values.update(new)
            if self.path:
                self.unsaved = True
                store.save(self.path, self.values)
                self.unsaved = False
        return changed
