"""Which ratings look fake (docs/domain.md, "Honest ratings"): flagged and kept, never dropped.

The rules, each a `suspect_why` value:
- `fast_press`: in prompt mode, pressed within 500 ms of the prompt;
- `no_window`: a prompt-mode score with no prompt to wait from (wait_ms null);
- `burst`: the 5th or later rating from one terminal within 30 s;
- `regular`: the 7th or later press at intervals that vary by under 2 %, like a machine.
History is per terminal and in memory, by press time and seq, so a copy of a rating already
seen is judged as it was; after a restart the history starts again.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right, insort
from collections import OrderedDict

from collector.rating import Rating

FAST_PRESS_MS = 500
BURST_COUNT = 5
BURST_WINDOW_MS = 30_000
REGULAR_PRESSES = 7
REGULAR_SPREAD = 0.02
HISTORY = 20  # presses kept per terminal
TERMINALS = 50_000  # terminals kept, least recently heard from forgotten first


class _Presses:
    """One terminal's latest presses: press time by seq, and the same times sorted."""

    __slots__ = ("by_seq", "last_seq", "times")

    def __init__(self) -> None:
        self.by_seq: dict[int, int] = {}
        self.times: list[int] = []
        self.last_seq = 0

    def add(self, seq: int, ts: int) -> None:
        known = self.by_seq.get(seq)
        if known == ts:
            return
        if known is not None:  # the same seq pressed at another time: a new boot's count
            self._forget(seq)
        self.by_seq[seq] = ts
        insort(self.times, ts)
        self.last_seq = max(self.last_seq, seq)
        if len(self.by_seq) > HISTORY:
            self._forget(min(self.by_seq))

    def _forget(self, seq: int) -> None:
        ts = self.by_seq.pop(seq)
        del self.times[bisect_right(self.times, ts) - 1]

    def up_to(self, seq: int) -> list[int]:
        """Sorted press times of this seq and those before it."""
        if seq == self.last_seq:  # the usual case: the terminal's newest press
            return self.times
        return sorted([t for s, t in self.by_seq.items() if s <= seq])


def _close(newest: int, middle: int, oldest: int) -> bool:
    """Whether the last two gaps are within 20 % of each other; when they are not, the presses
    cannot be regular (six gaps within 2 % standard deviation of their mean are all within 5 %
    of it), and the full test, which costs more, is skipped: most presses are human."""
    later, earlier = newest - middle, middle - oldest
    return abs(later - earlier) <= 0.2 * min(later, earlier)


class SuspectJudge:
    def __init__(self) -> None:
        self._presses: OrderedDict[tuple[str, str], _Presses] = OrderedDict()

    def judge(self, rating: Rating) -> str | None:
        """The rule a rating breaks, or None; skipped windows break none."""
        if rating.score is None:
            return None
        timing = self._timing_rule(rating) if rating.ts is not None else None
        return self._window_rule(rating) or timing

    @staticmethod
    def _window_rule(rating: Rating) -> str | None:
        if rating.mode != "prompt":
            return None
        if rating.wait_ms is None:
            return "no_window"
        return "fast_press" if rating.wait_ms < FAST_PRESS_MS else None

    def _timing_rule(self, rating: Rating) -> str | None:
        assert rating.ts is not None
        presses = self._history(rating)
        presses.add(rating.seq, rating.ts)
        earlier = presses.up_to(rating.seq)
        low = bisect_right(earlier, rating.ts - BURST_WINDOW_MS)
        if bisect_right(earlier, rating.ts) - low >= BURST_COUNT:
            return "burst"
        if len(earlier) >= REGULAR_PRESSES and _close(earlier[-1], earlier[-2], earlier[-3]):
            last = earlier[-REGULAR_PRESSES:]
            gaps = [b - a for a, b in itertools.pairwise(last)]
            mean = sum(gaps) / len(gaps)
            # population standard deviation under REGULAR_SPREAD of the mean, squared both sides
            spread = sum([(g - mean) ** 2 for g in gaps]) / len(gaps)
            if mean > 0 and spread < (REGULAR_SPREAD * mean) ** 2:
                return "regular"
        return None

    def _history(self, rating: Rating) -> _Presses:
        key = (rating.site, rating.device)
        presses = self._presses.get(key)
        if presses is None:
            presses = self._presses[key] = _Presses()
            if len(self._presses) > TERMINALS:
                self._presses.popitem(last=False)
        else:
            self._presses.move_to_end(key)
        return presses
