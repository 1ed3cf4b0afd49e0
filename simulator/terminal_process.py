"""One real firmware instance under the MicroPython Unix port, driven like a board.

The firmware's simulated board (firmware/board_unix.py) reads control lines on
stdin and writes what it shows and does as JSON lines on stdout; this class is
the other end of that channel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack.process import end_process
from fwtools.unix_port import FIRMWARE_DIR, FirmwareError, firmware_main, port_command

Event = dict[str, Any]
RESET_EXIT_CODE = 3  # the simulated board's reset (firmware/board_unix.py)


class FirmwareTerminal:
    """A terminal process with its own folder (settings.json, counters.json)."""

    def __init__(
        self,
        workdir: Path,
        settings: dict[str, Any],
        firmware_dir: Path = FIRMWARE_DIR,
        heap: str | None = None,
        rom: Path | None = None,
    ) -> None:
        """firmware_dir: the sources, or a built image (the simulation's own modules then come
        from the sources); heap: the Unix port's heap size, as -X heapsize takes it; rom: a
        ROMFS image with the simulation's modules, run in place as from a board's flash
        (firmware_dir then gives main.py only)."""
        self.workdir = workdir
        self.settings = settings
        self.firmware_dir = firmware_dir
        self.heap = heap
        self.rom = rom
        self.reboots = False  # a reset boots the firmware again (else the process ends)
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def device(self) -> str:
        return str(self.settings["device"])

    def start(self) -> None:
        """Power on: a new boot, whose events start a fresh list."""
        with self._changed:
            self.events = []
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "settings.json").write_text(json.dumps(self.settings))
        shutil.copyfile(self.firmware_dir / "slots.py", self.workdir / "slots.py")  # deployed
        self._launch()

    def _launch(self) -> None:
        rom = rom1 = None
        if self.rom is not None:  # the board's two ROM partitions, the first as deployed
            rom, rom1 = self.workdir / "romfs0.img", self.workdir / "romfs1.img"
            if not rom.exists():
                shutil.copyfile(self.rom, rom)
        cmd, env = port_command(firmware_main(self.firmware_dir), self.heap, rom=rom, rom1=rom1)
        proc = self._proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read_events, args=(proc,), daemon=True)
        self._reader.start()

    def press(self, button: int) -> None:
        """Tap the score button at this index (0 is the first, leftmost)."""
        self._send(f"press {button}")

    def hold(self, button: int) -> None:
        self._send(f"down {button}")

    def release(self, button: int) -> None:
        self._send(f"up {button}")

    def clerk_key(self) -> None:
        """Tap the clerk's "please rate" key."""
        self._send("clerk")

    def wifi(self, up: bool) -> None:
        self._send("wifi on" if up else "wifi off")

    def ntp(self, works: bool) -> None:
        self._send("ntp on" if works else "ntp off")

    def set_clock(self, unix_ms: int) -> None:
        """Set the terminal's calendar (once it has the time, its ts follow from there)."""
        self._send(f"clock {unix_ms}")

    def elapse(self, ms: int) -> None:
        """Let ms pass at once on the board's ticks and calendar (as if it stood still)."""
        self._send(f"elapse {ms}")

    def flash(self, works: bool) -> None:
        """Make every flash write fail (EIO), as worn-out flash does, or work again."""
        self._send("flash ok" if works else "flash fail")

    def crash(self) -> None:
        """Make the firmware's key scan task fail, as a bug would."""
        self._send("crash")

    def hang(self) -> None:
        """Make the firmware's loop stand still past the watchdog's time, as a stuck board's."""
        self._send("hang")

    def power_cut(self) -> None:
        """Cut the power: the process dies at once, with whatever it had on flash."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._proc = None

    def exit_code(self, timeout_s: float = 10.0) -> int:
        """Wait for the process to end by itself (a reset) and return its exit code."""
        if self._proc is None:
            raise FirmwareError(f"{self.device} is not running")
        code = self._proc.wait(timeout=timeout_s)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._proc = None
        return code

    def wait_for(
        self, match: Callable[[Event], bool], timeout_s: float = 10.0, after: int = 0
    ) -> Event:
        """The first event from index `after` on that matches, waiting for it if needed."""

        def first(events: list[Event]) -> Event | None:
            return next((e for e in events[after:] if match(e)), None)

        return self._wait(first, timeout_s)

    def wait_count(self, kind: str, count: int, timeout_s: float = 10.0) -> Event:
        """Wait until `count` events of this kind have come; returns the last of them."""

        def nth(events: list[Event]) -> Event | None:
            found = [e for e in events if e["ev"] == kind]
            return found[count - 1] if len(found) >= count else None

        return self._wait(nth, timeout_s)

    def _wait(self, check: Callable[[list[Event]], Event | None], timeout_s: float) -> Event:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = check(self.events)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (not self.running and not self._reader_alive()):
                    raise FirmwareError(
                        f"{self.device}: no matching event in {timeout_s}s, "
                        f"last events: {self.events[-5:]}"
                    )
                self._changed.wait(min(left, 0.5))

    def wait_acked(self, seq: int, timeout_s: float = 10.0) -> Event:
        return self.wait_for(lambda e: e["ev"] == "acked" and e["seq"] == seq, timeout_s)

    def of_kind(self, kind: str) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e["ev"] == kind]

    def last_of(self, *kinds: str) -> Event | None:
        """The latest event of any of these kinds."""
        with self._changed:
            return next((e for e in reversed(self.events) if e["ev"] in kinds), None)

    @property
    def pid(self) -> int:
        """The terminal's process (the Unix port runs inside it)."""
        if self._proc is None:
            raise FirmwareError(f"{self.device} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Ask the firmware to quit; kill it if it does not within a few seconds."""
        if self._proc is None:
            return
        end_process(self._proc, lambda: self._send("quit"), 5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._proc = None

    def _send(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise FirmwareError(f"{self.device} is not running")
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def _read_events(self, proc: subprocess.Popen[bytes]) -> None:
        """Events until the process ends; a reset (the firmware's own, RESET_EXIT_CODE)
        boots it again when `reboots` is set, as a board resets into its next boot, the
        events going on in the same list."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                event = {"ev": "output", "line": text}
            if not isinstance(event, dict) or "ev" not in event:
                event = {"ev": "output", "line": text}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        if proc.wait() == RESET_EXIT_CODE and self.reboots and self._proc is proc:
            self._launch()
        with self._changed:
            self._changed.notify_all()
