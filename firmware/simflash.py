# Simulated flash for the Unix port, as littlefs block devices:
# FileFlash keeps the blocks in a host file, so they outlive the process
# (killing the process is a power cut) and take no MicroPython heap;
# RamFlash keeps them in RAM and can fail after a given number of writes,
# to cut the power at every write step in tests.


class PowerCut(OSError):
    pass


class FileFlash:
    def __init__(self, path, block_size=4096, blocks=256):
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


class RamFlash:
    def __init__(self, block_size=512, blocks=128):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(b"\xff" * (block_size * blocks))
        self.writes = 0
        self.cut_after = None  # fail the write after this many
        self.dead = False  # the power is off: writes do nothing

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        if self.dead:
            # Only objects of a mount from before the cut get here, from finalizers
            # that run with the heap locked: copy without allocating.
            data = self.data
            for i in range(len(buf)):
                buf[i] = data[start + i]
            return
        buf[:] = self.data[start : start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        if self.dead:
            return
        if self.cut_after is not None and self.writes >= self.cut_after:
            raise PowerCut("power cut")
        self.writes += 1
        start = block * self.block_size + (offset or 0)
        self.data[start : start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.block_size
        if op == 6 and not self.dead:
            self.writeblocks(arg, b"\xff" * self.block_size)
        return 0

    def reboot(self):
        """A new flash with this one's content as the power comes back; this one goes dead."""
        self.dead = True
        fresh = RamFlash(self.block_size, self.blocks)
        fresh.data[:] = self.data
        return fresh
