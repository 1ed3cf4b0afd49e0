# The simulated board for the MicroPython Unix port.
#
# A test or the simulator drives it through a line-based control channel on
# stdin ("press 2", "quit") and reads what a customer would see or hear, and
# what the terminal did, as JSON lines on stdout. Nothing else differs from
# the ESP32 board.
import asyncio
import json
import sys

import protocol


class Board:
    def __init__(self):
        self._stdin = asyncio.StreamReader(sys.stdin)

    def now_ms(self):
        """Wall-clock ms since 1970, or None while the time is unknown."""
        return protocol.unix_ms()

    async def network_up(self):
        return True

    async def next_input(self):
        """The next ("press", button) or ("quit", None) from the control channel."""
        while True:
            line = await self._stdin.readline()
            if not line:
                return ("quit", None)
            words = line.decode().split()
            if words == ["quit"]:
                return ("quit", None)
            if len(words) == 2 and words[0] == "press" and words[1].isdigit():
                return ("press", int(words[1]))
            self.emit("log", msg="unknown control line", line=line.decode().strip())

    def show(self, state):
        """LEDs and voice: idle, thanks, offline, error."""
        self.emit("show", state=state)

    def emit(self, event, **fields):
        fields["ev"] = event
        sys.stdout.write(json.dumps(fields) + "\n")
