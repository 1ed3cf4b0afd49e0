# Small JSON files on flash, replaced atomically so a power cut leaves
# either the old or the new content, never a torn one.
import json
import os


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
    """The boot count and the last rating seq, persisted before each is used.

    A seq is saved before its rating exists, so a power cut can skip a seq
    but never hand the same one out twice.
    """

    def __init__(self, path):
        self.path = path
        saved = load(path, {})
        self.boot = saved.get("boot", -1) + 1
        self.seq = saved.get("seq", 0)
        self._save()

    def next_seq(self):
        self.seq += 1
        self._save()
        return self.seq

    def _save(self):
        save(self.path, {"boot": self.boot, "seq": self.seq})
