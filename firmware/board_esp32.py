# The ESP32 board: keys, status LED, buzzer and voice module, Wi-Fi, clock,
# watchdog. Everything else in the firmware is the same on every board.
# Wiring (docs/firmware.md, "Wiring"): keys pull the pin to ground when pressed.
import asyncio
import gc
import json
import time

import esp32
import machine
import neopixel
import network
import ntptime
import protocol

SCORE_PINS = (32, 33, 25, 26, 27)  # leftmost first: config "buttons" maps them to scores
CLERK_PIN = 14  # the clerk's "please rate" key
LED_PIN = 4  # one WS2812 status LED
BUZZER_PIN = 18  # passive buzzer, driven by PWM
VOICE_UART = 2  # DFPlayer-style voice module on UART2 (TX GPIO 17), if fitted
VOICE_TX_PIN = 17
ROMFS_LABELS = ("romfs", "romfs1")  # the two ROM partitions of a board that updates in place

COLOURS = {
    "idle": (0, 12, 0),
    "window": (0, 0, 80),
    "attitude": (0, 0, 80),  # the aspect mode's first question: a window like any other
    "efficiency": (0, 50, 80),
    "reason": (60, 30, 0),
    "thanks": (0, 80, 0),
    "offline": (24, 0, 24),
    "update": (40, 40, 40),  # the update boot: a new image being fetched
    "error": (80, 0, 0),
}
TONES = {  # (Hz, ms) notes
    "prompt": ((880, 120), (1175, 160)),
    "attitude": ((880, 120), (1175, 160)),
    "efficiency": ((1175, 120), (880, 160)),
    "thanks": ((1175, 120), (1568, 200)),
    "reason": ((660, 150), (660, 150)),
    "error": ((220, 500),),
}
# 0001.mp3: 您好，请您对我的服务做出评价; 0002.mp3: 谢谢; 0003.mp3: 请选择原因; 0004.mp3: error;
# 0005.mp3: 请您对我的服务态度做出评价; 0006.mp3: 请您对我的工作效率做出评价
VOICE_TRACKS = {"prompt": 1, "thanks": 2, "reason": 3, "error": 4, "attitude": 5, "efficiency": 6}


class Board:
    key_count = len(SCORE_PINS) + 1
    wifi_poll_ms = 250  # Wi-Fi is looked at this often while linked: a loss shows within 1 s

    def __init__(self):
        pins = SCORE_PINS + (CLERK_PIN,)
        self._keys = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in pins]
        self._led = neopixel.NeoPixel(machine.Pin(LED_PIN), 1)
        self._buzzer = machine.PWM(machine.Pin(BUZZER_PIN), freq=1000, duty_u16=0)
        self._voice = None
        self._wlan = network.WLAN(network.STA_IF)
        self._wdt = None
        self._synced = False

    def mount_flash(self):
        """MicroPython's own boot has mounted littlefs at /."""

    def rom_partition(self, n):
        """ROM partition n (0: the one MicroPython mounts at /rom; 1: the second, which
        main.py mounts at /rom1) to write an image into, or None on a board without both
        (its images then go to folders on the file system)."""
        found = [esp32.Partition.find(esp32.Partition.TYPE_DATA, label=x) for x in ROMFS_LABELS]
        if not (found[0] and found[1]):
            return None
        return RomPartition(found[n][0])

    def device_id(self):
        return "ev-" + "".join("%02x" % b for b in self._wlan.config("mac"))

    def read_keys(self):
        mask = 0
        keys = self._keys
        for i in range(len(keys)):
            if not keys[i].value():
                mask |= 1 << i
        return mask

    def wall_ms(self):
        return protocol.unix_ms() if self._synced else None

    def sync_time(self, host):
        ntptime.host = host
        try:
            ntptime.settime()
        except OSError:
            return False
        self._synced = True
        return True

    async def wifi_connect(self, ssid, password):
        if not ssid:
            return False
        self._wlan.active(True)
        self._wlan.connect(ssid, password)
        for _ in range(150):
            if self._wlan.isconnected():
                return True
            await asyncio.sleep_ms(100)
        self._wlan.disconnect()
        return False

    def wifi_connected(self):
        return self._wlan.isconnected()

    def heap_free(self):
        return gc.mem_free()

    def rssi(self):
        try:
            return self._wlan.status("rssi")
        except OSError:
            return None

    def battery_mv(self):
        return None  # mains powered; a battery board reads its divider here

    def show(self, state):
        self._led[0] = COLOURS[state]
        self._led.write()

    def sound(self, name):
        if self._voice is not None:
            self._play_track(VOICE_TRACKS[name])
        else:
            asyncio.create_task(self._beep(TONES[name]))

    def use_voice_module(self):
        """Call when a voice module is fitted: prompts are then spoken, not beeped."""
        self._voice = machine.UART(VOICE_UART, baudrate=9600, tx=VOICE_TX_PIN)

    def _play_track(self, track):
        if self._voice is None:
            return
        frame = bytearray(b"\x7e\xff\x06\x03\x00\x00\x00\xef")
        frame[6] = track
        self._voice.write(frame)

    async def _beep(self, notes):
        for hz, ms in notes:
            self._buzzer.freq(hz)
            self._buzzer.duty_u16(32768)
            await asyncio.sleep_ms(ms)
            self._buzzer.duty_u16(0)
            await asyncio.sleep_ms(30)

    def wdt_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self, reason):
        self.emit("reset", reason=reason)
        time.sleep_ms(200)
        machine.reset()

    def start(self):
        """No simulation tasks on real hardware."""

    def emit(self, event, **fields):
        """A log line on the serial console."""
        fields["ev"] = event
        print(json.dumps(fields))


class RomPartition:
    """A ROM partition as the updater writes an image into it: erased, then written in
    order, read back to check its digest."""

    def __init__(self, partition):
        self._part = partition
        self.capacity = partition.info()[3]
        self._block = partition.ioctl(5, 0)  # erase block size

    def erase(self, size):
        if size > self.capacity:
            raise OSError(28)  # ENOSPC
        for block in range((size + self._block - 1) // self._block):
            self._part.ioctl(6, block)

    def write(self, offset, data):
        self._part.writeblocks(offset // self._block, data, offset % self._block)

    def read(self, offset, buf):
        self._part.readblocks(offset // self._block, buf, offset % self._block)
        return len(buf)
