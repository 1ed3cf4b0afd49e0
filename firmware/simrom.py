# The simulated board's two ROM partitions, files romfs0.img and romfs1.img in the
# terminal's host folder; imported only by the update boot, which writes one.
import simflash


class RomPartition:
    """ROM partition n, as the firmware writes a new image into it: the launcher
    (fwtools/unix_rom.py) maps romfs0.img at /rom and romfs1.img at /rom1 when it starts."""

    capacity = 256 * 1024

    def __init__(self, n):
        self.path = "%s/romfs%d.img" % (simflash.host, n)

    def erase(self, size):
        if size > self.capacity:
            raise OSError(28)  # ENOSPC
        with open(self.path, "wb"):
            pass

    def write(self, offset, data):
        if simflash.FileFlash.failing:
            raise OSError(5)
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def read(self, offset, buf):
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.readinto(buf) or 0
