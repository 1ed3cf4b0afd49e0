"""Copy the image and a device's settings file to a board, with mpremote."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from fwtools.unix_port import firmware_module, tool_binary


class DeployError(RuntimeError):
    """The settings file is not one a terminal could start with."""


def check_settings(path: Path) -> dict[str, object]:
    """Load a settings file and check it as the firmware will at boot."""
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DeployError(f"{path}: {e}") from None
    if not isinstance(values, dict):
        raise DeployError(f"{path}: settings must be a JSON object")
    firmware_settings = firmware_module("settings")  # the firmware's own check
    try:
        firmware_settings.load(str(path), default_device="ev-000000000000")
    except firmware_settings.SettingsError as e:
        raise DeployError(f"{path}: {e}") from None
    if not values.get("wifi_ssid"):
        raise DeployError(f"{path}: wifi_ssid is required on a board")
    return values


# Modules left on the file system by an earlier deploy would be found before /rom's.
REMOVE_MODULES = "import os;[os.remove(f) for f in os.listdir() if f.endswith('.mpy')]"


def commands(
    port: str, image: list[Path], settings: Path, romfs: Path | None = None
) -> list[list[str]]:
    """One mpremote run: copy every image file and the settings, then reset the board. With
    a ROMFS image, the modules go to the board's ROM partition instead (its firmware must
    have one, MicroPython 1.25+), and only main.py to its file system."""
    mpremote = tool_binary("mpremote", "pip install mpremote")
    cmd = [mpremote, "connect", port]
    if romfs is not None:
        cmd += ["romfs", "deploy", str(romfs), "+", "exec", REMOVE_MODULES, "+"]
        image = [path for path in image if path.suffix != ".mpy"]
    for path in image:
        cmd += ["fs", "cp", str(path), f":{path.name}", "+"]
    cmd += ["fs", "cp", str(settings), ":settings.json", "+", "reset"]
    return [cmd]


def run(cmds: list[list[str]], dry_run: bool) -> None:
    for cmd in cmds:
        print(shlex.join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)
