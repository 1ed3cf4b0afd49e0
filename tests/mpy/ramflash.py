# Simulated flash in RAM for the power-cut tests, as a littlefs block device
# that can fail after a given number of writes: a power cut at every write step.
# (Not in the terminal: firmware/simflash.py is the simulated board's flash.)


class PowerCut(OSError):
    pass


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
