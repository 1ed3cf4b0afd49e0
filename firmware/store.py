# Small JSON files on flash, replaced atomically so a power cut leaves
# either the old or the new content, never a torn one.
import json
import os

import contract

SLOT_FILE = "slot.json"  # the image to boot and the last update's result (slots.py, update.py)
NEXT_SETTINGS = "settings.next.json"  # settings offered over the air, until a broker took them


def load(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def save(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


class Counters:
    """The boot count, the last rating seq and the running counters of telemetry.

    A seq is saved before its rating exists, so a power cut can skip a seq but
    never hand the same one out twice. The counters ride along with each save;
    bump() alone only marks them for the next one.
    """

    def __init__(self, path):
        self.path = path
        saved = load(path, {})
        self.boot = saved.get("boot", -1) + 1
        self.seq = saved.get("seq", 0)
        self.stats = {name: saved.get(name, 0) for name in contract.STATS}
        self.dirty = False
        self.save()

    def next_seq(self):
        self.seq += 1
        self.save()
        return self.seq

    def bump(self, name):
        self.stats[name] += 1
        self.dirty = True

    def save(self):
        state = {"boot": self.boot, "seq": self.seq}
        state.update(self.stats)
        save(self.path, state)
        self.dirty = False
