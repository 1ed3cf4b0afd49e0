# The simulated board's hardware for the Unix port: its flash chip and its reset-cause
# register (its two ROM partitions: simrom.py), kept as files in the terminal's host folder so
# they outlive the process (killing the process is a power cut); simboot.py mounts the
# flash as the board starts. `FileFlash.failing` makes every write fail, as worn-out flash
# does. (tests/mpy/ramflash.py cuts the power at a chosen write, for the tests.)
FLASH_BLOCKS = 256  # 1 MB of 4 KB blocks, like an ESP32's file system partition
host = None  # the terminal's host folder, once booted (simboot.py)
reset_cause = None  # why the board last reset ("watchdog", "update"...), None after power-on


class FileFlash:
    failing = False  # every write fails (EIO) while set

    def __init__(self, path, block_size=4096, blocks=FLASH_BLOCKS):
        self.block_size = block_size
        self.blocks = blocks
        self._erased = b"\xff" * 256  # an erase writes this over the block, piece by piece
        try:
            self._file = open(path, "r+b")
            self.fresh = False
        except OSError:
            self._file = open(path, "w+b")  # grows as written; unwritten reads as erased
            self.fresh = True

    def readblocks(self, block, buf, offset=0):
        self._file.seek(block * self.block_size + offset)
        n = self._file.readinto(buf) or 0
        for i in range(n, len(buf)):
            buf[i] = 0xFF

    def writeblocks(self, block, buf, offset=0):
        if self.failing:
            raise OSError(5)  # EIO
        self._file.seek(block * self.block_size + (offset or 0))
        self._file.write(buf)
        self._file.flush()

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            for offset in range(0, self.block_size, len(self._erased)):
                self.writeblocks(arg, self._erased, offset)
        return 0


def note_reset(reason):
    """Keep why the board resets, for the next boot (an ESP32 has a register for it)."""
    with open("%s/reset_cause" % host, "w") as f:
        f.write(reason)
