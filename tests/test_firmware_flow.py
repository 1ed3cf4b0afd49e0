"""The rating flow and the key scanner, as plain logic under CPython."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fwtools.unix_port import firmware_module

flow = firmware_module("flow")
keys = firmware_module("keys")

PROMPT = {
    "mode": "prompt",
    "window_s": 10,
    "buttons": [5, 4, 3, 2, 1],
    "ask_reason": True,
    "lockout_s": 5,
    "aspects": False,
}
FREE = {**PROMPT, "mode": "free"}
ASPECTS = {**PROMPT, "aspects": True}


def ratings(events):
    """The ratings' keyword fields, as attributes to read them by."""
    return [SimpleNamespace(**e[1]) for e in events if e[0] == "rating"]


def shows(events):
    return [e[1] for e in events if e[0] == "show"]


def strays(events):
    return [e[1] for e in events if e[0] == "stray"]


def test_prompt_then_press_rates_with_wait_and_ticket():
    f = flow.RatingFlow(dict(PROMPT), 0)
    events = f.prompt(1000, "A023")
    assert ("opened", "A023") in events and shows(events) == ["window"]
    events = f.press(1, 2830)
    [r] = ratings(events)
    assert (r.score, r.reason, r.mode, r.ticket, r.wait_ms, r.at) == (
        4,
        None,
        "prompt",
        "A023",
        1830,
        2830,
    )
    assert shows(events) == ["thanks"]
    assert shows(f.tick(2830 + flow.THANKS_MS)) == ["idle"]


def test_only_one_press_per_window():
    f = flow.RatingFlow(dict(PROMPT), 0)
    f.prompt(0)
    assert ratings(f.press(0, 100))
    assert strays(f.press(0, 200)) == ["repeat"]
    assert strays(f.press(0, 100 + flow.THANKS_MS - 1)) == ["repeat"]
    events = f.press(0, 100 + flow.THANKS_MS)  # overdue timeouts apply before the press
    assert shows(events) == ["idle"] and strays(events) == ["no window open"]


def test_window_that_times_out_is_a_skipped_rating():
    f = flow.RatingFlow(dict(PROMPT), 0)
    f.prompt(0, "B007")
    assert f.tick(9999) == []
    events = f.tick(10000)
    [r] = ratings(events)
    assert (r.score, r.ticket, r.wait_ms, r.at) == (None, "B007", None, 10000)
    assert shows(events) == ["idle"]


def test_a_new_prompt_closes_the_open_window_as_skipped():
    f = flow.RatingFlow(dict(PROMPT), 0)
    f.prompt(0, "A1")
    events = f.prompt(3000, "A2")
    [r] = ratings(events)
    assert (r.score, r.ticket) == (None, "A1")
    [r2] = ratings(f.press(2, 4000))
    assert (r2.score, r2.ticket, r2.wait_ms) == (3, "A2", 1000)


@pytest.mark.parametrize(
    ("buttons", "button", "reason"),
    [
        ([5, 4, 3, 2, 1], 1, "efficiency"),
        ([5, 4, 3, 2, 1], 3, "environment"),
        ([5, 3, 1], 2, "other"),
        ([5, 4, 2, 1], 2, "expertise"),
    ],
)
def test_poor_score_asks_the_reason_on_the_same_buttons(buttons, button, reason):
    f = flow.RatingFlow({**PROMPT, "buttons": buttons}, 0)
    f.prompt(0)
    events = f.press(len(buttons) - 1, 500)
    assert ratings(events) == [] and shows(events) == ["reason"]
    [r] = ratings(f.press(button, 1500))
    assert (r.score, r.reason, r.wait_ms) == (buttons[-1], reason, 500)


def test_reason_not_given_sends_the_rating_without_one():
    f = flow.RatingFlow(dict(PROMPT), 0)
    f.prompt(0)
    f.press(4, 500)
    events = f.tick(500 + flow.REASON_MS)
    [r] = ratings(events)
    assert (r.score, r.reason) == (1, None)
    assert shows(events) == ["thanks"]


def test_no_reason_asked_when_disabled():
    f = flow.RatingFlow({**PROMPT, "ask_reason": False}, 0)
    f.prompt(0)
    [r] = ratings(f.press(4, 500))
    assert (r.score, r.reason) == (1, None)


def test_free_mode_rates_then_locks_out():
    f = flow.RatingFlow(dict(FREE), 0)
    [r] = ratings(f.press(0, 100))
    assert (r.score, r.mode, r.ticket, r.wait_ms) == (5, "free", None, None)
    assert strays(f.press(0, 4000)) == ["repeat"]
    assert shows(f.tick(5100)) == ["idle"]
    assert ratings(f.press(1, 5200))[0].score == 4


def test_free_mode_ignores_prompts():
    f = flow.RatingFlow(dict(FREE), 0)
    assert strays(f.prompt(0, "A1")) == ["prompt in free mode"]


def test_a_button_without_a_score_is_stray():
    f = flow.RatingFlow({**PROMPT, "buttons": [5, 3, 1]}, 0)
    f.prompt(0)
    assert strays(f.press(3, 100)) == ["no score on that button"]
    assert f.state == "window"


class Keys:
    """Feed samples every 10 ms, like the board does."""

    def __init__(self, count=6):
        self.now = 0
        self.scanner = keys.KeyScanner(count, 0)
        self.events = []

    def hold(self, mask, ms):
        for _ in range(ms // 10):
            self.now += 10
            self.events.extend(self.scanner.scan(mask, self.now))


def test_a_clean_tap_is_one_press():
    k = Keys()
    k.hold(0, 50)
    k.hold(0b100, 120)
    k.hold(0, 100)
    assert k.events == [("press", 2)]


def test_bounces_are_filtered():
    k = Keys()
    for _ in range(3):  # contact bounce: 10 ms on, 10 ms off
        k.hold(0b1, 10)
        k.hold(0, 10)
    k.hold(0, 100)
    assert k.events == []
    k.hold(0b1, 100)
    for _ in range(3):
        k.hold(0, 10)
        k.hold(0b1, 10)
    k.hold(0, 100)
    assert k.events == [("press", 0)]


def test_a_long_hold_is_not_a_press_and_a_jam_is_stuck():
    k = Keys()
    k.hold(0b10, 2000)
    k.hold(0, 100)
    assert k.events == []
    k.hold(0b10, keys.STUCK_MS + 100)
    assert k.events == [("stuck", 1)]
    assert k.scanner.stuck_keys() == [1]
    k.hold(0, 100)
    assert k.events == [("stuck", 1), ("unstuck", 1)]
    assert k.scanner.stuck_keys() == []


def test_a_key_down_at_start_up_counts_only_after_release():
    k = Keys()
    k.scanner = keys.KeyScanner(6, 0, initial_mask=0b1)
    k.hold(0b1, 100)
    k.hold(0, 100)
    assert k.events == []
    k.hold(0b1, 100)
    k.hold(0, 100)
    assert k.events == [("press", 0)]


def test_two_keys_at_once_are_two_presses():
    k = Keys()
    k.hold(0b11, 100)
    k.hold(0, 100)
    assert k.events == [("press", 0), ("press", 1)]


# --- the aspect mode: attitude, then efficiency ---


def test_aspects_asks_attitude_then_efficiency_and_sends_one_rating_of_both():
    f = flow.RatingFlow(dict(ASPECTS), 0)
    events = f.prompt(1000, "B007")
    assert ("opened", "B007") in events and shows(events) == ["attitude"]
    events = f.press(0, 2500)  # attitude 5
    assert shows(events) == ["efficiency"] and not ratings(events)
    events = f.press(1, 4000)  # efficiency 4
    [r] = ratings(events)
    assert r.aspects == {"attitude": 5, "efficiency": 4}
    assert (r.score, r.reason, r.ticket, r.wait_ms, r.at) == (4, None, "B007", 1500, 2500)
    assert shows(events) == ["thanks"]


def test_an_unanswered_efficiency_is_none_never_a_default():
    f = flow.RatingFlow(dict(ASPECTS), 0)
    f.prompt(0)
    f.press(2, 1000)  # attitude 3
    assert not ratings(f.tick(1000 + 10_000 - 1))
    [r] = ratings(f.tick(1000 + 10_000))
    assert r.aspects == {"attitude": 3, "efficiency": None}
    assert (r.score, r.reason) == (3, None)


def test_a_window_closing_unanswered_is_skipped_with_both_aspects_none():
    f = flow.RatingFlow(dict(ASPECTS), 0)
    f.prompt(0)
    [r] = ratings(f.tick(10_000))
    assert r.aspects == {"attitude": None, "efficiency": None} and r.score is None


def test_a_poor_aspect_is_the_reason_and_no_reason_is_asked():
    f = flow.RatingFlow(dict(ASPECTS), 0)
    f.prompt(0)
    f.press(1, 1000)  # attitude 4
    events = f.press(4, 2000)  # efficiency 1
    [r] = ratings(events)
    assert (r.score, r.reason) == (1, "efficiency") and shows(events) == ["thanks"]
    f = flow.RatingFlow(dict(ASPECTS), 0)
    f.prompt(0)
    f.press(3, 1000)  # attitude 2
    [r] = ratings(f.press(3, 2000))  # efficiency 2: a tie goes to the first asked
    assert (r.score, r.reason) == (2, "attitude")


def test_a_new_prompt_during_efficiency_sends_what_was_answered():
    f = flow.RatingFlow(dict(ASPECTS), 0)
    f.prompt(0)
    f.press(0, 1000)
    events = f.prompt(3000, "C001")
    [r] = ratings(events)
    assert r.aspects == {"attitude": 5, "efficiency": None}
    assert shows(events)[-1] == "attitude"


def test_aspects_in_free_mode_ask_efficiency_after_the_first_press():
    f = flow.RatingFlow({**ASPECTS, "mode": "free"}, 0)
    assert shows(f.press(2, 1000)) == ["efficiency"]
    [r] = ratings(f.press(0, 1500))
    assert r.aspects == {"attitude": 3, "efficiency": 5} and r.mode == "free"


def test_the_default_mode_sends_no_aspects():
    f = flow.RatingFlow(dict(PROMPT), 0)
    f.prompt(0)
    [r] = ratings(f.press(0, 1000))
    assert r.aspects is None
