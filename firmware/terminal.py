# The rating terminal's customer side: keys and prompts go through the rating
# flow, the LEDs and buzzer answer, and every rating is written to the flash
# queue before the customer is thanked. The uplink (uplink.py) takes it from
# there. A watchdog is fed only while every task runs and the key scan beats.
import asyncio
import gc

import outbox
from flow import IDLE, RatingFlow
from keys import KeyScanner
from ticks import ms
from uplink import Uplink

SCAN_MS = 10
WATCHDOG_MS = 8000
HEALTHY_BEAT_MS = 2000
GC_SHARE = 16  # the heap is collected each time this share of it has been allocated

SOUNDS = {  # what is heard as each state is shown
    "window": "prompt",
    "attitude": "attitude",
    "efficiency": "efficiency",
    "reason": "reason",
    "thanks": "thanks",
    "error": "error",
}


class Terminal:
    def __init__(self, board, settings, config, counters, box):
        self.board = board
        self.settings = settings
        self.config = config
        self.counters = counters
        self.outbox = box
        self.flow = RatingFlow(config, ms())
        self.uplink = Uplink(board, settings, config, counters, box, self._on_link, self._prompt)
        self._beat = ms()
        self.linked = False  # since boot: an image on trial that never links gives up
        self._crashed = None
        self._dropped = False
        # Early and often: collected only when full, a small heap fragments until a few
        # hundred bytes cannot be found while a drain's traffic is at its peak
        gc.threshold((gc.mem_free() + gc.mem_alloc()) // GC_SHARE)

    async def run(self):
        self.board.start()
        self.board.show("offline")
        tasks = (("keys", self._scan_keys()), ("link", self.uplink.run()))
        for name, coro in tasks:
            asyncio.create_task(self._guarded(name, coro))
        await self._supervise()

    async def _guarded(self, name, coro):
        try:
            await coro
        except Exception as e:
            self._crashed = "%s: %r" % (name, e)

    async def _supervise(self):
        """Feed the watchdog only while every task runs and the key scan keeps beating;
        keep the clock; reset into the update boot once an image is offered and no window is
        open."""
        self.board.wdt_start(WATCHDOG_MS)
        while True:
            self.uplink.keep_time()
            slot = self.uplink.slot
            if slot and self.flow.state == IDLE:  # neither resets while a window is open
                if slot.get("trial"):
                    self.uplink.overair().watch_trial(self)
                if "fetch" in slot:
                    self._to_update_boot()
            await asyncio.sleep_ms(500)
            if self._crashed:
                self.board.emit("crash", task=self._crashed)
                self.board.reset("task failed: " + self._crashed)
            if ms() - self._beat < HEALTHY_BEAT_MS:
                self.board.wdt_feed()

    def _to_update_boot(self):
        """Reset into the update boot (update.py), an offer noted: the queue's head and the
        counters on flash first, so the reset costs no rating and repeats no acknowledged
        one."""
        if not self.outbox.head_saved:
            self.outbox.save_head()
        self.counters.save()
        self.board.reset("update")

    # --- keys and the rating flow ---

    async def _scan_keys(self):
        board = self.board
        scanner = KeyScanner(board.key_count, ms(), board.read_keys())
        clerk = board.key_count - 1 if self.settings["clerk_key"] else None
        while True:
            now = ms()
            for kind, key in scanner.scan(board.read_keys(), now):
                if kind == "press":
                    if key == clerk:
                        self._handle(self.flow.prompt(now))
                    else:
                        self.press(key, now)
                else:
                    self.uplink.stuck = scanner.stuck_keys()
                    board.emit(kind, key=key)
                    self.uplink.state_changed()
            events = self.flow.tick(now)
            if events:
                self._handle(events)
            self._beat = now
            await asyncio.sleep_ms(SCAN_MS)

    def press(self, key, now):
        """Score key `key` was pressed (the key scan calls this on a debounced press; the
        bench calls it directly, since debouncing would pace it at tens of ms a press)."""
        self._handle(self.flow.press(key, now))

    def _prompt(self, ticket):
        """A prompt from the queue system, its ticket already cleaned to the contract."""
        self._handle(self.flow.prompt(ms(), ticket))

    def _on_link(self, up):
        self.linked = self.linked or up
        if not up:
            self.board.show("offline")
        elif self.flow.state == IDLE:
            self.board.show("idle")

    def _handle(self, events):
        for event in events:
            kind = event[0]
            if kind == "rating":
                self._record(event[1])
            elif kind == "show":
                state = event[1]
                if state == "thanks" and self._dropped:
                    state = "error"
                self.board.show(state)
                if state in SOUNDS:
                    self.board.sound(SOUNDS[state])
            elif kind == "opened":
                self.counters.bump("prompts")
                self.board.emit("opened", ticket=event[1])
            elif kind == "stray":
                self.counters.bump("stray")
                self.board.emit("stray", why=event[1])

    def _record(self, record):
        """Queue the rating on flash; only then may the customer be thanked."""
        counters = self.counters
        counters.bump("rated" if record["score"] is not None else "skipped")
        record["seq"] = counters.next_seq()
        record["boot"] = counters.boot
        wall = self.board.wall_ms()
        record["ts"] = None if wall is None else wall - (ms() - record["at"])
        record["counter"] = self.config["counter"]
        record["staff"] = self.config["staff"]
        self._dropped = not self.outbox.append(outbox.encode(record))
        if self._dropped:
            counters.bump("dropped")
            self.uplink.state_changed()
            self.board.emit("dropped", seq=record["seq"])
            return
        self.board.emit("rated", **{k: v for k, v in record.items() if k != "at"})
        self.uplink.queued()
