"""Run the MicroPython Unix port with a ROMFS image outside its heap, as a board's flash is.

On an ESP32 with a ROM partition, MicroPython mounts the partition's memory-mapped flash
at /rom when it starts, and an .mpy there runs in place: its bytecode and constants never
enter the heap. The Unix port has no such partition, so this launcher makes one: the image
is loaded into this (CPython) process's memory, outside MicroPython's heap, and a first
line mounts it with `vfs.VfsRom` over `uctypes.bytearray_at`, before the script runs
(compiled from its source, as a board runs main.py) or a module of the image is imported.
A heap size given here is then the heap a board's firmware would have to itself.

A board that updates its image over the air has a second ROM partition: `--rom1 IMAGE` maps
that one at /rom1 (not on the path: the boot loader, main.py, puts it there when it runs
the image in it), when the file holds an image (one half written by a download the power
cut holds none).

    python -m fwtools.unix_rom IMAGE.romfs [--rom1 IMAGE] [-X heapsize=64K]
        (SCRIPT | -m MODULE) [ARGS...]
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import micropython_run  # the Unix port, as the `micropython` command runs it

MOUNT = (
    "import sys,vfs,uctypes\n"
    "vfs.mount(vfs.VfsRom(uctypes.bytearray_at(%d,%d)),'/rom')\n"
    "sys.path.insert(0,'/rom')\n"
    "sys.argv[:]=%r\n"
)
MOUNT_SECOND = (
    "try:\n vfs.mount(vfs.VfsRom(uctypes.bytearray_at(%d,%d)),'/rom1')\nexcept OSError:\n pass\n"
)
RUN_SCRIPT = "exec(compile(open(%r).read(),%r,'exec'))\n"
RUN_MODULE = "import %s\n"


def command(
    address: int,
    size: int,
    options: list[str],
    run: list[str],
    second: tuple[int, int] | None = None,
) -> list[str]:
    """The Unix port's command line: mount the image of `size` bytes at `address` (and the
    second at /rom1, when given as (address, size)), then run the script (or import the
    module, `-m NAME`) with the arguments that follow it."""
    module = run[1] if run[0] == "-m" else None
    args = run[2:] if module else run[1:]
    name = module or run[0]
    start = RUN_MODULE % module if module else RUN_SCRIPT % (name, name)
    prelude = MOUNT % (address, size, [name, *args])
    if second is not None:
        prelude += MOUNT_SECOND % second
    return ["micropython", *options, "-c", prelude + start]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    image = Path(argv.pop(0)).read_bytes()
    rom = ctypes.create_string_buffer(image, len(image))  # alive until the port returns
    second = None
    if argv[0] == "--rom1":
        path = Path(argv[1])
        argv = argv[2:]
        held = path.read_bytes() if path.is_file() else b""
        if held:
            rom1 = ctypes.create_string_buffer(held, len(held))
            second = (ctypes.addressof(rom1), len(held))
    options = argv[0:2] if argv[0] == "-X" else []
    run = argv[len(options) :]
    code: int = micropython_run.run_main(
        command(ctypes.addressof(rom), len(image), options, run, second)
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
