# The firmware's clock: milliseconds since start-up that never wrap, for every interval.
#
# A board's time.ticks_ms() wraps, an ESP32's every 2^30 ms (12.4 days), and
# time.ticks_diff() reads an interval right only within ±2^29 ms (6.2 days): an uptime,
# or a press waiting days for the clock, would be misread. ms() extends the ticks into a
# count that never wraps by adding the ticks passed since its last reading, modulo 2^30:
# right as long as it is read at least once every 12.4 days, and the terminal reads it
# every 10 ms. Past 2^30 ms an ESP32's count is a long int (31-bit small ints): each
# reading then allocates a few bytes for the garbage collector, and keeps none.
#
# Every board's ticks wrap at WRAP, as an ESP32's do; the simulated board starts its own
# where it is told and lets time pass at once, by moving _shift (board_unix.py).
import time

WRAP = 1 << 30  # an ESP32's ticks period; the Unix port's (2^62) is a multiple of it

try:
    _board_ticks = time.ticks_ms
except AttributeError:  # CPython, for unit tests and scale mode

    def _board_ticks():
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]  # CPython only


_shift = 0  # added to the board's ticks: the simulated board's (board_unix.py moves it)
_last = _board_ticks() & (WRAP - 1)  # type: ignore[operator]  # opaque in the stubs
_ms = 0


def ms():
    """Milliseconds since start-up."""
    global _last, _ms
    now = (_board_ticks() + _shift) & (WRAP - 1)  # type: ignore[operator]
    _ms += (now - _last) & (WRAP - 1)
    _last = now
    return _ms
