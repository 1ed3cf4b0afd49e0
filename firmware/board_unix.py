# The simulated board for the MicroPython Unix port.
#
# A test or the simulator drives it through lines on stdin (the board's local
# control channel) and reads what a customer would see or hear, and what the
# terminal did, as JSON lines on stdout. Its flash, ROM partitions and reset
# cause are files in the device's host folder (simflash.py), so they survive a
# restart; killing the process is a power cut.
#
# Control lines:
#   press N | down N | up N   tap, hold or release score key N (0 = first)
#   clerk                     tap the clerk's "please rate" key
#   wifi off | wifi on        drop or restore the Wi-Fi link
#   ntp off | ntp on          make time synchronisation fail or work
#   clock MS                  the calendar says it is MS (Unix ms) now; it runs on from there
#   elapse MS                 MS ms (under 2^30) pass at once on the ticks and the calendar,
#                             as if the board had stood still that long
#   flash fail | flash ok     make every flash write fail (EIO) or work again
#   crash                     make the key scan task fail (watchdog test)
#   hang                      make the key scan hang the loop past the watchdog's time
#   quit                      stop the process
import asyncio
import gc
import json
import os
import sys
import time

import protocol
import simflash
import ticks

SCORE_KEYS = 5
CLERK_KEY = SCORE_KEYS  # bit of the clerk key in read_keys()
TAP_MS = 80
RESET_EXIT_CODE = 3
WATCHDOG_HANG_MS = 9000  # "hang": the loop stands still longer than the watchdog's 8 s


class Board:
    key_count = SCORE_KEYS + 1
    wifi_poll_ms = 250  # Wi-Fi is looked at this often while linked: a loss shows within 1 s

    def __init__(self):
        self._mask = 0
        self._scans = 0  # the key scan's reads: a tap lasts for the scan, not the clock
        self._wifi = True
        self._ntp = True
        self._synced = False
        self._clock_offset_ms = 0
        self._crash = False  # type: bool | None  # True: the scan fails; None: it hangs
        self._voice = False
        self._wdt_ms = None
        self._wdt_fed = ticks.ms()
        self._stdin = asyncio.StreamReader(sys.stdin)

    # --- flash and identity ---

    def mount_flash(self):
        """The flash is mounted (simflash.boot(), as an ESP32's own boot mounts its file
        system); the simulation's settings (`sim`) are read from settings.json."""
        try:
            with open("settings.json") as f:
                sim = json.load(f).get("sim", {})
        except (OSError, ValueError, AttributeError):
            sim = {}
        self._ntp = sim.get("ntp", True)
        self._wifi = sim.get("wifi", True)
        if "ticks_ms" in sim:  # the board's ticks start here (they wrap at 2^30, as an ESP32's)
            ticks.ms()  # and ms() goes on from where it is
            ticks._shift = (sim["ticks_ms"] - ticks._last) & (ticks.WRAP - 1)
            ticks._last = sim["ticks_ms"]

    def rom_partition(self, n):
        """ROM partition n (0 or 1) to write an image into, or None when the board runs
        without one (the launcher mounted none at /rom)."""
        try:
            os.stat("/rom")
        except OSError:
            return None
        import simrom

        return simrom.RomPartition(n)

    def device_id(self):
        return None  # the simulator always names its terminals

    # --- keys, clock, network ---

    def read_keys(self):
        if self._crash:
            raise RuntimeError("key scan failed (injected)")
        if self._crash is None:  # hung: the whole loop stands still, as a stuck board's
            time.sleep_ms(WATCHDOG_HANG_MS)
        self._scans += 1
        return self._mask

    def wall_ms(self):
        """Ms since 1970 once the time was synchronised, else None."""
        return protocol.unix_ms() + self._clock_offset_ms if self._synced else None

    def sync_time(self, host):
        self._synced = self._synced or self._ntp
        return self._ntp

    async def wifi_connect(self, ssid, password):
        return self._wifi

    def wifi_connected(self):
        return self._wifi

    def heap_free(self):
        return gc.mem_free()

    def rssi(self):
        return -55 if self._wifi else None

    def battery_mv(self):
        return None

    # --- feedback ---

    def show(self, state):
        """LEDs: idle, window, reason, thanks, offline, error."""
        self.emit("show", state=state)

    def sound(self, name):
        """Buzzer or voice module: prompt, thanks, reason, error."""
        self.emit("sound", name=name, by="voice" if self._voice else "buzzer")

    def use_voice_module(self):
        """Call when a voice module is fitted: prompts are then spoken, not beeped."""
        self._voice = True

    # --- watchdog and reset ---

    def wdt_start(self, timeout_ms):
        self._wdt_ms = timeout_ms
        self._wdt_fed = ticks.ms()

    def wdt_feed(self):
        self._wdt_fed = ticks.ms()

    def reset(self, reason):
        self.emit("reset", reason=reason)
        simflash.note_reset(reason)
        sys.exit(RESET_EXIT_CODE)

    # --- the simulation's own tasks ---

    def start(self):
        asyncio.create_task(self._control())
        asyncio.create_task(self._watchdog())

    async def _watchdog(self):
        while True:
            await asyncio.sleep_ms(100)
            if self._wdt_ms and ticks.ms() - self._wdt_fed > self._wdt_ms:
                self.reset("watchdog")

    async def _control(self):
        while True:
            line = await self._stdin.readline()
            words = line.decode().split()
            if not line or words == ["quit"]:
                self.emit("quit")
                sys.exit(0)
            try:
                await self._command(words)
            except (ValueError, IndexError):
                self.emit("log", msg="bad control line", line=line.decode().strip())

    async def _command(self, words):
        verb = words[0]
        if verb in ("press", "down", "up", "clerk"):
            bit = 1 << (CLERK_KEY if verb == "clerk" else int(words[1]))
            if verb == "up":
                self._mask &= ~bit
            else:
                self._mask |= bit
            if verb in ("press", "clerk"):
                await self._tap()
                self._mask &= ~bit
        elif verb == "wifi":
            self._wifi = words[1] == "on"
        elif verb == "ntp":
            self._ntp = words[1] == "on"
        elif verb == "clock":  # the simulator's calendar: now is this Unix ms
            self._clock_offset_ms = int(words[1]) - protocol.unix_ms()
        elif verb == "elapse":
            ms = int(words[1])
            ticks.ms()
            ticks._shift = (ticks._shift + ms) & (ticks.WRAP - 1)  # ms() counts them
            self._clock_offset_ms += ms
            self._wdt_fed += ms  # the watchdog stood still too
        elif verb == "flash":
            simflash.FileFlash.failing = words[1] == "fail"
        elif verb == "crash":
            self._crash = True
        elif verb == "hang":
            self._crash = None
        else:
            raise ValueError(verb)

    async def _tap(self):
        """Hold the keys down until the key scan has read them over TAP_MS of its own time, in
        at least four reads: a machine too busy to run the scan for a while would otherwise
        lose a press the customer made."""
        first = self._scans + 1
        while self._scans < first:
            await asyncio.sleep_ms(10)
        since = ticks.ms()
        while self._scans < first + 3 or ticks.ms() - since < TAP_MS:
            await asyncio.sleep_ms(10)

    def emit(self, event, **fields):
        fields["ev"] = event
        sys.stdout.write(json.dumps(fields) + "\n")
