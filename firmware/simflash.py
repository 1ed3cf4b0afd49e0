# Simulated flash for the Unix port: a littlefs block device in RAM,
# optionally written through to a host file so that it outlives the process
# (a killed process is a power cut), and able to fail after a given number
# of writes, to cut the power at every write step in tests.


class PowerCut(OSError):
    pass


class SimFlash:
    def __init__(self, block_size=4096, blocks=64, path=None):
        self.block_size = block_size
        self.blocks = blocks
        self.path = path
        self.writes = 0
        self.cut_after = None  # fail the write after this many
        self.dead = False  # power is off: reads and writes do nothing
        size = block_size * blocks
        self.data = bytearray(b"\xff" * size)
        self.fresh = True
        if path:
            try:
                with open(path, "rb") as f:
                    f.readinto(self.data)
                self.fresh = False
            except OSError:
                with open(path, "wb") as f:
                    f.write(self.data)
            self._file = open(path, "r+b")

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
        self._write(block * self.block_size + (offset or 0), buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6 and not self.dead:  # erase
            self._write(arg * self.block_size, b"\xff" * self.block_size)
        return 0

    def reboot(self):
        """A new flash with this one's content, as the power comes back; this one goes dead."""
        self.dead = True
        fresh = SimFlash(self.block_size, self.blocks)
        fresh.data[:] = self.data
        fresh.fresh = False
        return fresh

    def _write(self, start, buf):
        if self.dead:
            return
        if self.cut_after is not None and self.writes >= self.cut_after:
            raise PowerCut("power cut")
        self.writes += 1
        self.data[start : start + len(buf)] = buf
        if self.path:
            self._file.seek(start)
            self._file.write(buf)
            self._file.flush()
