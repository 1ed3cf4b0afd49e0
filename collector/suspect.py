"""Which ratings look fake (DOMAIN.md, "Honest ratings"): flagged and kept, never dropped.

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
import statistics
from collections import OrderedDict

from collector.rating import Rating

FAST_PRESS_MS = 500
BURST_COUNT = 5
BURST_WINDOW_MS = 30_000
REGULAR_PRESSES = 7
REGULAR_SPREAD = 0.02
HISTORY = 20  # presses kept per terminal
TERMINALS = 50_000  # terminals kept, least recently heard from forgotten first


class SuspectJudge:
    def __init__(self) -> None:
        self._presses: OrderedDict[tuple[str, str], dict[int, int]] = OrderedDict()

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
        presses[rating.seq] = rating.ts
        earlier = sorted(t for s, t in presses.items() if s <= rating.seq)
        recent = [t for t in earlier if rating.ts - BURST_WINDOW_MS < t <= rating.ts]
        if len(recent) >= BURST_COUNT:
            return "burst"
        if len(earlier) >= REGULAR_PRESSES:
            gaps = [b - a for a, b in itertools.pairwise(earlier[-REGULAR_PRESSES:])]
            mean = statistics.fmean(gaps)
            if mean > 0 and statistics.pstdev(gaps) / mean < REGULAR_SPREAD:
                return "regular"
        return None

    def _history(self, rating: Rating) -> dict[int, int]:
        key = (rating.site, rating.device)
        presses = self._presses.pop(key, None) or {}
        self._presses[key] = presses
        while len(self._presses) > TERMINALS:
            self._presses.popitem(last=False)
        while len(presses) > HISTORY:
            del presses[min(presses)]
        return presses
