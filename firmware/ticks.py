# Millisecond ticks that wrap on MicroPython (time.ticks_ms) and do not on
# CPython, so logic modules measure intervals the same way under both.
import time

try:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
except AttributeError:  # CPython, for unit tests

    def ticks_ms():
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]  # CPython only

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b
