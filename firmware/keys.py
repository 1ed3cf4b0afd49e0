# Turns raw key samples into presses: debounced, counted on release, and a
# key held down (a jam, a child leaning on it, a stuck switch) reported as
# stuck instead of being counted.
#
# The board samples every key every few milliseconds and calls scan() with a
# bitmask of the keys that are down; scan() allocates nothing but the events
# it returns, and usually returns the same empty tuple.


DEBOUNCE_MS = 30
LONG_HOLD_MS = 1500
STUCK_MS = 5000

_NONE = ()


class KeyScanner:
    """scan(down_mask, now_ms) -> tuple of ("press", key) / ("stuck", key) / ("unstuck", key).

    A press counts on release, after the key was down at least DEBOUNCE_MS and
    less than LONG_HOLD_MS. A key down for STUCK_MS is stuck until released; a
    key down at start-up counts only once it has been seen up.
    """

    def __init__(self, count, now_ms, initial_mask=0):
        self.count = count
        self._stable = initial_mask  # debounced state
        self._raw = initial_mask
        self._raw_since = now_ms
        self._down_since = [now_ms] * count
        self._armed = [not initial_mask & (1 << k) for k in range(count)]
        self._stuck = [False] * count

    def stuck_keys(self):
        return [k for k in range(self.count) if self._stuck[k]]

    def scan(self, mask, now_ms):
        if mask != self._raw:
            self._raw = mask
            self._raw_since = now_ms
        events = _NONE  # type: tuple[tuple[str, int], ...]
        if self._raw != self._stable and now_ms - self._raw_since >= DEBOUNCE_MS:
            events = self._edges(self._stable ^ self._raw, now_ms)
            self._stable = self._raw
        for k in range(self.count):
            if (
                self._stable & (1 << k)
                and not self._stuck[k]
                and now_ms - self._down_since[k] >= STUCK_MS
            ):
                self._stuck[k] = True
                events = events + (("stuck", k),)
        return events

    def _edges(self, changed, now_ms):
        events = _NONE  # type: tuple[tuple[str, int], ...]
        for k in range(self.count):
            bit = 1 << k
            if not changed & bit:
                continue
            if self._raw & bit:  # went down
                self._down_since[k] = now_ms
                continue
            held = now_ms - self._down_since[k]
            if self._stuck[k]:
                self._stuck[k] = False
                events = events + (("unstuck", k),)
            elif self._armed[k] and held < LONG_HOLD_MS:
                events = events + (("press", k),)
            self._armed[k] = True
        return events
