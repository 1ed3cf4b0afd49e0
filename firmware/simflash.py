# Simulated flash for the Unix port: a littlefs block device either in a
# host file (it outlives the process, so killing the process is a power
# cut, and it takes no MicroPython heap) or in RAM, where it can fail after
# a given number of writes to cut the power at every write step in tests.


class PowerCut(OSError):
    pass


class SimFlash:
    def __init__(self, block_size=4096, blocks=64, path=None):
        self.block_size = block_size
        self.blocks = blocks
        self.writes = 0
        self.cut_after = None  # RAM only: fail the write after this many
        self.dead = False  # RAM only: the power is off; reads and writes do nothing
        self.fresh = True
        self.data = None
        self._file = None
        self._erased = b"\xff" * block_size
        if path is None:
            self.data = bytearray(b"\xff" * (block_size * blocks))
            return
        try:
            self._file = open(path, "r+b")
            self.fresh = False
        except OSError:
            self._file = open(path, "w+b")  # grows as written; unwritten reads as erased

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        if self._file is not None:
            self._file.seek(start)
            n = self._file.readinto(buf)
            for i in range(n or 0, len(buf)):  # past the end of a new file: erased
                buf[i] = 0xFF
            return
        if self.dead:
            # Only objects of a mount from before the cut get here, from finalizers
            # that run with the heap locked: copy without allocating.
            data = self.data
            for i in range(len(buf)):
                buf[i] = data[start + i]
            return
        buf[:] = self.data[start : start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        self._write(block * self.block_size + (offset or 0), buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6 and not self.dead:  # erase
            self._write(arg * self.block_size, self._erased)
        return 0

    def reboot(self):
        """RAM: a new flash with this one's content as the power comes back; this one goes dead."""
        self.dead = True
        fresh = SimFlash(self.block_size, self.blocks)
        fresh.data[:] = self.data
        fresh.fresh = False
        return fresh

    def _write(self, start, buf):
        if self._file is not None:
            self._file.seek(start)
            self._file.write(buf)
            self._file.flush()
            self.writes += 1
            return
        if self.dead:
            return
        if self.cut_after is not None and self.writes >= self.cut_after:
            raise PowerCut("power cut")
        self.writes += 1
        self.data[start : start + len(buf)] = buf
