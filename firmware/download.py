# A download of the update boot (update.py) into a file of the file system: new settings, or
# on a board without a second ROM partition an image, then unpacked: its modules go into a
# folder (fw0 or fw1), which the boot loader (slots.py) puts first on the path. Imported only
# while such an update comes.
import os

READ_BYTES = 256
ROMFS_HEADER = b"\xd2\xcd\x31"
ROMFS_FILE = 5
ROMFS_DATA = 2


class Download:
    """A file written in order and read back (then unpacked, for an image)."""

    def __init__(self, path):
        self.path = path

    def erase(self, size):
        with open(self.path, "wb"):
            pass

    def write(self, offset, data):
        with open(self.path, "ab") as f:
            f.write(data)

    def read(self, offset, buf):
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.readinto(buf) or 0

    def unpack(self, folder):
        """Its files into `folder` (emptied first), the download then removed."""
        unpack(self.path, folder)
        os.remove(self.path)


def unpack(path, folder):
    """The files of a ROMFS image (mpremote's writer: a header, then records of a kind and a
    length) into `folder`, emptied first: a folder board runs them from there."""
    try:
        for name in os.listdir(folder):
            os.remove(folder + "/" + name)
    except OSError:
        os.mkdir(folder)
    buf = bytearray(READ_BYTES)
    with open(path, "rb") as f:
        if f.read(3) != ROMFS_HEADER:
            raise ValueError("no ROMFS header")
        end = _uint(f)
        end += f.tell()
        while f.tell() < end:
            kind, length = _uint(f), _uint(f)
            after = f.tell() + length
            if kind == ROMFS_FILE:
                name = f.read(_uint(f)).decode()
                if (
                    "/" in name
                    or name.startswith((".", "main.", "slots."))
                    or _uint(f) != ROMFS_DATA
                ):
                    raise ValueError("file %r" % name)
                left = _uint(f)
                with open(folder + "/" + name, "wb") as out:
                    while left:
                        n = f.readinto(memoryview(buf)[: min(left, READ_BYTES)])
                        if not n:
                            raise ValueError("cut short")
                        out.write(memoryview(buf)[:n])
                        left -= n
            f.seek(after)


def _uint(f):
    """A ROMFS number: 7 bits a byte, the highest first, each but the last marked."""
    value = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError("cut short")
        value = (value << 7) | (b[0] & 0x7F)
        if not b[0] & 0x80:
            return value
