# The rating flow at one window, as docs/domain.md describes it: a state machine
# with no I/O. The terminal feeds it prompts, clerk-key and button presses and
# clock ticks; it answers with what to show and what happened.
#
# prompt mode: a prompt (queue system or clerk key) opens a window of
#   window_s; the first press rates; a window that closes unrated is a
#   skipped rating (score None). Presses with no window open are stray.
# free mode: always ready; a press rates, then a lock-out of lockout_s in
#   which presses are stray.
# In both, a score <= 2 with ask_reason asks for the reason on the same
# buttons; no answer within reason_s sends the rating with reason None.
# With config `aspects` (docs/contract.md) the window asks for attitude and,
# once pressed, for efficiency, each within window_s: one rating of both,
# an unanswered aspect None; its score and reason follow from them.
import contract

IDLE = "idle"
WINDOW = "window"
REASON = "reason"
THANKS = "thanks"
ATTITUDE, EFFICIENCY = contract.ASPECTS  # the aspect mode's questions, shown as such

_ATTITUDE, _EFFICIENCY, _EXPERTISE, _ENVIRONMENT, _OTHER = contract.REASONS
REASONS_BY_BUTTONS = {
    3: (_ATTITUDE, _EFFICIENCY, _OTHER),
    4: (_ATTITUDE, _EFFICIENCY, _EXPERTISE, _OTHER),
    5: contract.REASONS,
}

THANKS_MS = 2000
REASON_MS = 8000


def outcome(score, mode, ticket, wait_ms, at, aspects=None):
    """One service window's result, in the rating record's keyword fields: the terminal adds
    seq, boot, ts, counter and staff. `at` is when it was pressed, or when the window closed
    unrated, in ms since start-up (ticks.ms())."""
    return {
        "score": score,
        "reason": None,
        "mode": mode,
        "ticket": ticket,
        "wait_ms": wait_ms,
        "at": at,
        "aspects": aspects,
    }


class RatingFlow:
    """Each method returns a list of events:
    ("show", state), ("opened", ticket), ("rating", outcome dict), ("stray", why).
    """

    def __init__(self, config, now):
        self.config = config
        self.state = IDLE
        self._deadline = None
        self._opened_at = now
        self._ticket = None
        self._pending = None  # type: dict | None  # the one waiting for its reason or efficiency

    def _cfg(self, key):
        return self.config[key]

    def next_deadline(self):
        return self._deadline

    def _enter(self, state, now, duration_ms, events):
        self.state = state
        self._deadline = None if duration_ms is None else now + duration_ms
        events.append(("show", state))

    def prompt(self, now, ticket=None):
        events = self.tick(now)
        if self._cfg("mode") != "prompt":
            events.append(("stray", "prompt in free mode"))
            return events
        self._finish(now, events)
        self._opened_at = now
        self._ticket = ticket
        events.append(("opened", ticket))
        window = ATTITUDE if self._cfg("aspects") else WINDOW
        self._enter(window, now, self._cfg("window_s") * 1000, events)
        return events

    def press(self, button, now):
        events = self.tick(now)
        buttons = self._cfg("buttons")
        pending = self._pending
        if self.state == REASON and pending is not None:
            reasons = REASONS_BY_BUTTONS.get(len(buttons), ())
            if button < len(reasons):
                pending["reason"] = reasons[button]
                self._rate(pending, now, events)
            else:
                events.append(("stray", "no reason on that button"))
            return events
        if button >= len(buttons):
            events.append(("stray", "no score on that button"))
            return events
        if self.state == EFFICIENCY and pending is not None:
            pending["aspects"][EFFICIENCY] = buttons[button]
            self._rate(pending, now, events)
            return events
        free = self._cfg("mode") == "free"
        if free and self.state == IDLE:
            result = outcome(buttons[button], "free", None, None, now)
        elif not free and self.state in (WINDOW, ATTITUDE):
            waited = now - self._opened_at
            result = outcome(buttons[button], "prompt", self._ticket, waited, now)
        else:
            events.append(("stray", "no window open" if self.state == IDLE else "repeat"))
            return events
        if self._cfg("aspects"):
            result["aspects"] = {ATTITUDE: result["score"], EFFICIENCY: None}
            self._pending = result
            self._enter(EFFICIENCY, now, self._cfg("window_s") * 1000, events)
        elif result["score"] <= contract.POOR_MAX and self._cfg("ask_reason"):
            self._pending = result
            self._enter(REASON, now, REASON_MS, events)
        else:
            self._rate(result, now, events)
        return events

    def tick(self, now):
        events = []  # type: list[tuple]
        if self._deadline is None or now < self._deadline:
            return events
        if self.state == THANKS:
            self._enter(IDLE, now, None, events)
        else:
            self._finish(now, events)
        return events

    def _finish(self, now, events):
        """Close whatever is open: an unrated window is skipped, a pending reason or
        efficiency is None."""
        if self.state in (WINDOW, ATTITUDE):
            aspects = {ATTITUDE: None, EFFICIENCY: None} if self.state == ATTITUDE else None
            events.append(("rating", outcome(None, "prompt", self._ticket, None, now, aspects)))
            self._ticket = None
            self._enter(IDLE, now, None, events)
        elif self.state in (REASON, EFFICIENCY) and self._pending is not None:
            self._rate(self._pending, now, events)

    def _rate(self, result, now, events):
        if result["aspects"] is not None:
            result["score"], result["reason"] = contract.aspects_overall(result["aspects"])
        self._pending = None
        self._ticket = None
        events.append(("rating", result))
        free = self._cfg("mode") == "free"
        self._enter(THANKS, now, self._cfg("lockout_s") * 1000 if free else THANKS_MS, events)
